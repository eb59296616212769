"""HTTP endpoint of benchmarks: thin, it calls the service; the answer is a job to poll."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.benchmarks import service
from app.benchmarks.schemas import BenchmarkCreate
from app.deps import SessionDep, TenantDep
from app.jobs.router import accepted
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/v1/benchmarks", tags=["benchmarks"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def create_benchmark(
    body: BenchmarkCreate, session: SessionDep, tenant_id: TenantDep, response: Response
) -> JobOut:
    """Benchmark any stored model, alone or against a baseline; poll the job at `Location`."""
    return accepted(response, service.create_benchmark(session, body, tenant_id=tenant_id))
