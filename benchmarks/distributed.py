"""Optional Dask path of the evaluation runner (extra ``distributed``: ``pip install dask[distributed]``).

Each (tracker, sequence) job is one Dask task running :func:`.accuracy.run_job` on a worker; results
(boxes (N, 4), times (N,), scores (N,)) travel back to the client, which writes every file, so the
workers need read access to the frames under the same paths (a shared file system) and the
``mixformerv2-cpu`` package installed, but no access to the output folder. Start workers with one
thread each (``dask worker ADDRESS --nthreads 1``) so that one worker runs one tracker at a time;
the tracker's own thread count comes from the job (``--threads`` / ``NAME:THREADS``).
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from .accuracy import Job, JobResult, OnResult, run_job

log = logging.getLogger(__name__)


def execute_dask(jobs: Sequence[Job], on_result: OnResult, address: Optional[str] = None,
                 n_workers: int = 2, client: Any = None) -> None:
    """Run ``jobs`` on a Dask cluster and call ``on_result`` as each finishes.

    ``client``: an existing ``distributed.Client`` (used as is); otherwise ``address`` of a running
    scheduler, or None to start a ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``
    for the duration of the call. A task that raises or whose worker dies (after Dask's own retries)
    becomes a failed JobResult; the other jobs go on.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError("the Dask path needs the 'distributed' extra: pip install 'dask[distributed]'") from exc
    owned: list = []
    try:
        if client is None:
            if address is None:
                cluster = LocalCluster(n_workers=max(1, n_workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                owned.append(cluster)
                client = Client(cluster)
            else:
                client = Client(address)
            owned.insert(0, client)
        log.info("dask: %d job(s) on %s", len(jobs), client)
        futures = {client.submit(run_job, job, pure=False): job for job in jobs}
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost task must not lose the others
                res = JobResult(job.spec.label, job.seq_name, error=f"dask task failed: {exc!r}")
            on_result(res)
            fut.release()
    finally:
        for obj in owned:
            obj.close()
