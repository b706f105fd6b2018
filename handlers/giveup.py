"""arq's own give-up paths end in the dead-letter list too.

`dispatch.guarded` dead-letters what our handlers fail on. arq itself drops a job, with
no more than a WARNING, when:

- its try count passed `max_tries` (a job whose worker died on every try: SIGKILL,
  OOM kill, a node lost; the count survives the deaths in `arq:retry:<id>`),
- its payload is gone (`arq:job:<id>` expired before a worker got to it),
- its payload cannot be deserialized, or names a function this worker does not have,
- it failed outside `guarded` (arq's own job timeout; a function added without it).

`DeadLetteringWorker` catches each of them where arq finishes the job: it writes a
dead letter (with the payload when there still is one) before arq deletes the job, logs
at ERROR and counts `tiktok_worker_gave_up_total{reason}`. If the worker dies between
the two writes the job runs again and may be dead-lettered twice: never lost.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final

from arq.constants import job_key_prefix, retry_key_prefix
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function
from prometheus_client import Counter

from handlers import metrics
from handlers.claiming import BatchClaimingWorker
from handlers.deadletter import DeadLetterStore
from receiver.ingest.events import MalformedEvent, decode_envelope, event_label
from receiver.ingest.jobs import PROCESS_EVENT, job_deserializer

logger = logging.getLogger("tiktok_webhooks.worker")

REASONS: Final = ("max_tries", "expired", "undecodable", "unknown_function", "failed")

GAVE_UP = Counter(
    "tiktok_worker_gave_up_total",
    "Jobs arq itself gave up on (dead-lettered by reason: max_tries, expired, "
    "undecodable, unknown_function, failed).",
    ["reason"],
)
UNKNOWN_FUNCTION: Final = "<unknown>"


class JobAbandoned(Exception):
    """The error a dead letter records when arq, not a handler, ended the job."""


def _reason(result: str) -> str:
    if "retries exceeded" in result:
        return "max_tries"
    if "job expired" in result:
        return "expired"
    if "not found" in result and result.startswith("JobExecutionFailed"):
        return "unknown_function"
    if "Deserializ" in result or "Serializ" in result:
        return "undecodable"
    return "failed"


def _event_of(function: str, args: list[Any]) -> str:
    if function != PROCESS_EVENT or not args or not isinstance(args[0], bytes):
        return "none"
    try:
        return event_label(decode_envelope(args[0]).event)
    except MalformedEvent:
        return "none"


class DeadLetteringWorker(BatchClaimingWorker):
    """An arq `Worker` whose every unsuccessful end of a job leaves a dead letter."""

    def __init__(self, *args: Any, dead_letter_store: DeadLetterStore | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._store = dead_letter_store
        # Ids of jobs whose function returned: arq's `finish_job(finish=True)` for any
        # other job is a failure (with keep_result=0 arq passes no result to tell).
        self._returned: set[str] = set()
        for name, function in list(self.functions.items()):
            if isinstance(function, Function) and not isinstance(function, CronJob):
                self.functions[name] = dataclasses.replace(
                    function, coroutine=self._tracking(function.coroutine)
                )

    def _tracking(self, coroutine: WorkerCoroutine) -> WorkerCoroutine:
        returned = self._returned

        async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            result = await coroutine(ctx, *args, **kwargs)
            returned.add(ctx["job_id"])
            return result

        return run

    def _dead_letters(self) -> DeadLetterStore:
        if self._store is None:
            self._store = DeadLetterStore(self.pool)
        return self._store

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        # Every give-up path of arq's `run_job` (expired, undecodable, unknown function,
        # max tries) comes here, before the job's keys are deleted.
        result = ""
        if result_data is not None:
            try:
                result = str(job_deserializer(result_data).get("r", ""))
            except Exception:  # our own serializer wrote it; be safe anyway
                result = ""
        await self._abandon(job_id, _reason(result), result or "arq gave up on the job")
        await super().finish_failed_job(job_id, result_data)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        returned = job_id in self._returned
        self._returned.discard(job_id)
        if finish and not returned and keep_in_progress is None:  # not a cron job
            await self._abandon(
                job_id,
                "failed",
                "the job failed outside its handlers (e.g. arq's job timeout, "
                "WORKER_JOB_TIMEOUT_SECONDS + 5)",
            )
        await super().finish_job(
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )

    async def _abandon(self, job_id: str, reason: str, why: str) -> None:
        raw = await self.pool.get(job_key_prefix + job_id)
        function, args, kwargs, tries = UNKNOWN_FUNCTION, [], {}, 0
        if raw is not None:
            try:
                job = job_deserializer(raw)
                function = str(job["f"])
                args, kwargs = list(job["a"]), dict(job["k"])
            except Exception:
                args = [raw]  # kept as it was, for whoever investigates
        if isinstance(self.functions.get(function), CronJob):
            logger.error("cron job %s ended without success (%s): %s", function, reason, why)
            return
        retries = await self.pool.get(retry_key_prefix + job_id)
        if retries is not None and retries.isdigit():
            tries = int(retries)
        event = _event_of(function, args)
        letter = await self._dead_letters().add(
            function=function,
            args=args,
            kwargs=kwargs,
            job_id=job_id,
            event=event,
            error=JobAbandoned(why),
            tries=tries,
        )
        GAVE_UP.labels(reason).inc()
        label = function if function in self.functions else "none"  # bounded
        metrics.count_job(label, event, "dead_lettered")
        logger.error(
            "job %s (%s, %s) dead-lettered as %s: arq gave up on it (%s): %s",
            job_id,
            function,
            event,
            letter.id,
            reason,
            why,
        )
