"""HTTP endpoint of benchmarks: thin, it calls the service; the answer is a job to poll."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.benchmarks import service
from app.benchmarks.schemas import BenchmarkCreate
from app.deps import SessionDep, TenantDep, UnitOfWorkRoute
from app.idempotency.dependency import JsonIdempotency
from app.jobs import rate_limit
from app.jobs.router import accepted
from app.jobs.schemas import JobOut
from app.openapi import BENCHMARK_EXAMPLES, problems

router = APIRouter(prefix="/v1/benchmarks", tags=["benchmarks"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problems(404, 409, 413, 422, 429),
    openapi_extra=BENCHMARK_EXAMPLES,
)
def create_benchmark(
    body: BenchmarkCreate,
    session: SessionDep,
    tenant_id: TenantDep,
    response: Response,
    idempotency: JsonIdempotency,
) -> JobOut | Response:
    """Benchmark any stored model, alone or against a baseline; poll the job at `Location`."""
    if (replayed := idempotency.replayed()) is not None:
        return replayed
    with rate_limit.reported(session, response, tenant_id=tenant_id):
        job = service.create_benchmark(session, body, tenant_id=tenant_id)
    return idempotency.keep(response, accepted(response, job))
