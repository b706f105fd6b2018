"""Start a poll's jobs with one Redis script call instead of four round trips per job.

arq's `Worker.start_jobs` claims each job of a poll on its own: WATCH the job's
in-progress key, EXISTS it, ZSCORE the job in the queue, then MULTI / PSETEX / EXEC, and
only then looks at the next job. `BatchClaimingWorker` takes as many of the poll's jobs
as it has free slots and claims them all in one script, which runs the same checks per
job atomically (a job is claimed when it is still queued, due, and no worker holds its
in-progress key; the key is set with arq's in-progress timeout). Whatever it does not
claim (taken by another worker meanwhile, finished, or deferred) is skipped exactly as
arq skips it. Jobs then run through arq's own `run_job`, unchanged.

The worker's CPU per job falls by about 40 % and Redis runs 3 commands fewer per job
(bench/WORKER.md).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

logger = logging.getLogger("tiktok_webhooks.worker")

# KEYS: the queue, then the in-progress key of each job; ARGV: now (ms), the in-progress
# timeout (ms), then the job ids in KEYS order. Returns per job its queue score, or nil
# when it was not claimed.
_CLAIM: Final = """
local now = tonumber(ARGV[1])
local claimed = {}
for i = 2, #KEYS do
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('PSETEX', KEYS[i], ARGV[2], '1')
    claimed[i - 1] = score
  else
    claimed[i - 1] = false
  end
end
return claimed
"""


class BatchClaimingWorker(Worker):
    """An arq `Worker` that claims each poll's jobs in one script call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claim_script: Any = None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        waiting = [job_id.decode() for job_id in job_ids]
        while waiting:
            # Wait for one free slot (as arq does), then take every other free one.
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            batch = [waiting.pop(0)]
            while waiting and not self.sem.locked() and self.job_counter < self.max_jobs:
                await self.sem.acquire()
                self.job_counter += 1
                batch.append(waiting.pop(0))
            await self._claim(batch)

    async def _claim(self, batch: list[str]) -> None:
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM)
        keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in batch)]
        timeout_ms = int(self.in_progress_timeout_s * 1000)
        # Cancelled while the script's answer is on its way (the worker stopping), the jobs
        # it claimed keep their in-progress keys and start again once those expire (job
        # timeout + 10 s), as with arq's own claim, for the whole batch instead of one job.
        try:
            scores = await self._claim_script(keys=keys, args=[timestamp_ms(), timeout_ms, *batch])
        except BaseException:
            for _ in batch:
                self._release_sem_dec_counter_on_complete()
            raise
        for job_id, score in zip(batch, scores, strict=True):
            if score is None:
                # Started elsewhere, finished and removed, or deferred meanwhile.
                self._release_sem_dec_counter_on_complete()
                logger.debug("job %s already running elsewhere", job_id)
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
