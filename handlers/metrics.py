"""Prometheus metrics of the worker process, served on its own port."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

JOB_OUTCOMES: Final = ("ok", "retry", "failed", "dead_lettered")

JOBS = Counter(
    "tiktok_worker_jobs_total",
    "Worker jobs by function, event (for process_event; else `none`) and outcome.",
    ["function", "event", "outcome"],
)
JOB_DURATION = Histogram(
    "tiktok_worker_job_duration_seconds",
    "Time a job's handlers took.",
    ["function"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("tiktok_worker_queue_depth", "Jobs in the arq queue (ready or deferred).")
QUEUE_OLDEST_AGE = Gauge(
    "tiktok_worker_queue_oldest_age_seconds",
    "How long the oldest ready job has waited (0 when none is ready).",
)
TOKEN_REFRESHES = Counter(
    "tiktok_token_refreshes_total",
    "Token refreshes by outcome (ok, invalid_grant, transient, not_found, error).",
    ["outcome"],
)
TOKENS_EXPIRING = Gauge(
    "tiktok_tokens_expiring_soon",
    "Active access tokens expiring within the refresh margin.",
)
REFRESH_TOKENS_EXPIRING = Gauge(
    "tiktok_refresh_tokens_expiring_soon",
    "Refresh tokens expiring within REFRESH_TOKEN_WARNING_DAYS: those users must re-connect.",
)
USERS_NEEDING_REAUTH = Gauge(
    "tiktok_users_needing_reauth", "Users whose grant is gone; they must connect again."
)
DEAD_LETTER_SIZE = Gauge("tiktok_dead_letter_size", "Jobs in the dead-letter list.")
DEAD_LETTERS_DROPPED = Counter(
    "tiktok_dead_letters_dropped_total",
    "Dead letters removed unreplayed, by reason: cap (DEAD_LETTER_MAX_ENTRIES) or age "
    "(DEAD_LETTER_MAX_AGE_SECONDS).",
    ["reason"],
)
for _reason in ("cap", "age"):
    DEAD_LETTERS_DROPPED.labels(_reason)
TOKEN_RECORDS_CORRUPT = Gauge(
    "tiktok_token_records_corrupt",
    "Token records marked corrupt (cannot be opened with a configured key); those users "
    "must connect again.",
)
RATE_LIMITER_WAITS = Counter(
    "tiktok_rate_limiter_waits_total",
    "Times a call to TikTok waited for the shared outbound budget.",
    ["endpoint"],
)
RATE_LIMITER_WAIT_SECONDS = Histogram(
    "tiktok_rate_limiter_wait_seconds",
    "How long calls waited for the outbound budget.",
    ["endpoint"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)

_job_children: dict[tuple[str, str, str], Counter] = {}
_duration_children: dict[str, Histogram] = {}


def count_job(function: str, event: str, outcome: str) -> None:
    """`JOBS` with its labelled child cached (a `.labels()` lookup per job adds up)."""
    child = _job_children.get((function, event, outcome))
    if child is None:
        child = _job_children[(function, event, outcome)] = JOBS.labels(function, event, outcome)
    child.inc()


def observe_duration(function: str, seconds: float) -> None:
    child = _duration_children.get(function)
    if child is None:
        child = _duration_children[function] = JOB_DURATION.labels(function)
    child.observe(seconds)
