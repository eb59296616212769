"""HTTP endpoints of jobs and presets: thin, they call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.deps import PageQuery, SessionDep, StorageDep, TenantDep, UnitOfWorkRoute, located
from app.etag import NOT_MODIFIED_DOC
from app.idempotency.dependency import JsonIdempotency
from app.jobs import rate_limit, repository, service, watch
from app.jobs.lifecycle import JobKind, JobStatus
from app.jobs.schemas import JobCreate, JobList, JobOut, JobReport, PresetList
from app.jobs.tables import JobTable
from app.openapi import JOB_EXAMPLES, problems

router = APIRouter(tags=["jobs"], route_class=UnitOfWorkRoute)

WaitQuery = Annotated[
    int,
    Query(
        ge=0,
        le=watch.MAX_WAIT_S,
        description="Long-poll: hold the request up to this many seconds until the job's "
        "status or stage changes (progress alone does not count), then answer with the new "
        "job. With `If-None-Match` it waits only while that ETag is current; a timeout is "
        "answered as without `wait` (304 or the job). A finished job is answered at once.",
    ),
]


def accepted(response: Response, job: JobTable) -> JobOut:
    """The answer to a new job of any kind: the job, and at `Location` where to poll it."""
    return located(response, f"/v1/jobs/{job.id}", service.to_out(job))


@router.get("/v1/presets", response_model=PresetList)
def list_presets() -> PresetList:
    """Every preset and the recipe it expands to."""
    return PresetList(items=service.list_presets())


@router.post(
    "/v1/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=problems(404, 409, 413, 422, 429),
    openapi_extra=JOB_EXAMPLES,
)
def create_job(
    body: JobCreate,
    session: SessionDep,
    tenant_id: TenantDep,
    response: Response,
    idempotency: JsonIdempotency,
) -> JobOut | Response:
    """Start compressing a model with a preset or a recipe, or an auto search (preset "auto"
    with an objective); poll the job at `Location`."""
    if (replayed := idempotency.replayed()) is not None:
        return replayed
    with rate_limit.reported(session, response, tenant_id=tenant_id):
        job = service.create_job(session, body, tenant_id=tenant_id)
    return idempotency.keep(response, accepted(response, job))


@router.get("/v1/jobs", response_model=JobList, responses=problems(422))
def list_jobs(
    session: SessionDep,
    tenant_id: TenantDep,
    page: PageQuery,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    model_id: Annotated[str | None, Query(max_length=64)] = None,
    parent_job_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[
        list[JobKind] | None,
        Query(
            description="Only these kinds (repeat it: `kind=compress&kind=auto` leaves out an "
            "auto search's candidates)."
        ),
    ] = None,
) -> JobList:
    """List jobs, newest first, optionally by status, model, kind, or auto job (its candidates)."""
    status_value = status_.value if status_ else None
    found = repository.list_page(
        session, page, tenant_id=tenant_id, status=status_value, model_id=model_id,
        parent_job_id=parent_job_id, kinds=[k.value for k in kind or []],
    )  # fmt: skip
    return found.to_list(JobList, service.to_out)


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobOut,
    responses={**NOT_MODIFIED_DOC, **problems(404, 422)},
)
async def get_job(
    job_id: str, session: SessionDep, tenant_id: TenantDep, request: Request, wait: WaitQuery = 0
) -> Response:
    """A job's status, progress and, once it succeeded, its metrics; `ETag` for cheap polling,
    and `wait` to hold the request until the status or stage changes."""
    return await watch.answer(request, session, job_id, tenant_id, wait)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, responses=problems(404))
def cancel_job(
    job_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> JobOut:
    """Cancel a queued or running job; a finished job is returned as it is."""
    return service.to_out(service.cancel(session, storage, job_id, tenant_id=tenant_id))


@router.get(
    "/v1/jobs/{job_id}/report",
    response_model=JobReport,
    responses=problems(404),
    operation_id="getJobReport",
)
def get_report(job_id: str, session: SessionDep, tenant_id: TenantDep) -> JobReport:
    """The per-pass report of a job."""
    return service.report(session, job_id, tenant_id=tenant_id)
