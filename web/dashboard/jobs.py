"""`/jobs`: money jobs that did not finish (failed, pending, running) with a retry button."""

from __future__ import annotations

from aiohttp import web

from billing.errors import BillingError
from billing.models import JobStatus
from web.dashboard.render import flash, page, see_other
from web.keys import BILLING
from web.operator.views import JobView

routes = web.RouteTableDef()

OPEN = (JobStatus.FAILED, JobStatus.PENDING, JobStatus.RUNNING)


@routes.get("/jobs", name="dash_jobs")
async def jobs(request: web.Request) -> web.Response:
    """Money jobs that did not finish."""
    found = await request.config_dict[BILLING].store.list_jobs(statuses=set(OPEN), limit=500)
    found.sort(key=lambda job: OPEN.index(job.status))  # failed first, each newest first
    return await page(request, "jobs.html", watch="job", jobs=[JobView.of(j) for j in found])


@routes.post("/jobs/{job_id}/retry", name="dash_job_retry")
async def retry(request: web.Request) -> web.Response:
    """Retry a failed money job (form)."""
    job_id = request.match_info["job_id"]
    try:
        job = await request.config_dict[BILLING].retry_job(job_id)
    except BillingError as exc:
        await flash(request, "error", f"Retry refused: {exc.message}")
    else:
        await flash(request, "ok", f"{job.kind.value} job queued again ({job.status.value})")
    raise see_other(request, "dash_jobs")
