"""HTTP endpoints of webhooks: the tenant's signing secret and a job's deliveries."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import SessionDep, TenantDep, UnitOfWorkRoute
from app.openapi import problems
from app.webhooks import service
from app.webhooks.schemas import WebhookDeliveryList, WebhookSecret

router = APIRouter(tags=["webhooks"], route_class=UnitOfWorkRoute)


@router.get("/v1/webhooks/default/secret", response_model=WebhookSecret)
def get_webhook_secret(session: SessionDep, tenant_id: TenantDep) -> WebhookSecret:
    """The key that signs your webhook deliveries (`whsec_...`), created on the first read."""
    return service.get_secret(session, tenant_id=tenant_id)


@router.post("/v1/webhooks/default/secret/rotate", response_model=WebhookSecret)
def rotate_webhook_secret(session: SessionDep, tenant_id: TenantDep) -> WebhookSecret:
    """A new signing key; for 24 hours deliveries carry a signature with the old key too."""
    return service.rotate_secret(session, tenant_id=tenant_id)


@router.get(
    "/v1/jobs/{job_id}/webhook-deliveries",
    response_model=WebhookDeliveryList,
    responses=problems(404),
)
def list_webhook_deliveries(
    job_id: str, session: SessionDep, tenant_id: TenantDep
) -> WebhookDeliveryList:
    """The job's webhook events, each with every delivery attempt (status, error, duration)."""
    return service.list_deliveries(session, job_id, tenant_id=tenant_id)
