"""The kinds of background job and the handler of each: the one table the job queue reads."""

from functools import partial

from sqlalchemy import Engine

from app.platform import jobs
from app.platform.storage import Storage
from app.services.billing import statements
from app.services.certificates import bulk_runs
from app.services.certificates.issuing import CertificateOptions


def job_handlers(certificate_options: CertificateOptions | None) -> dict[str, jobs.Handler]:
    """Each kind of job this process can do; without certificate options, no certificate runs."""
    handlers: dict[str, jobs.Handler] = {statements.JOB_KIND: statements.run_job}
    if certificate_options is not None:
        handlers[bulk_runs.JOB_KIND] = partial(bulk_runs.run_job, options=certificate_options)
    return handlers


def job_context(
    engine: Engine, storage: Storage, certificate_options: CertificateOptions | None = None
) -> jobs.JobContext:
    """What a worker (or a web process doing a job in place) needs to do every kind of job."""
    return jobs.JobContext(
        engine=engine, storage=storage, handlers=job_handlers(certificate_options)
    )
