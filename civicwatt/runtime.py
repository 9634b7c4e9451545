"""One runtime for every long-running process: polling, alert checks and delivery, heartbeat, registered jobs.

`civicwatt collect` and `civicwatt demo` both run a `Runtime`:

    rt = Runtime(registry, store, queue_dir, data_dir, quotas=cfg, channels="channels.yaml",
                 shard=(1, 2), check_interval_s=900, alerts=True)
    rt.start()            # polling on schedule, checks now and every interval, heartbeat
    ...
    rt.stop()             # stop the jobs, flush the queue to the store, heartbeat "stopped"

What runs where (APScheduler 3.x, the collector service's scheduler; every job logs
its own errors and carries on):

| job | every | in |
| --- | --- | --- |
| `poll-<N>s` | each meter's poll interval | every process (its shard's gateways) |
| `alerts-check` (`AlertService.scheduled_check`) | at start-up, then `check_interval_s` (900 s): meter rules each time, quota rules at start-up, on a new day and hourly | the leader, unless `alerts=False` |
| `alerts-daily` (every rule, outbox pruning) | 06:00 local | the same |
| `alerts-deliver` (retried delivery) | 60 s | the same |
| `upstream-push` (`civicwatt.upstream.UpstreamPusher`: approved months to the upper level) | the upstream file's `interval_s` | the leader, when `upstream` is given |
| `submission-reminders` (`alerts.submission_reminders`) | 09:00 local, and at start-up | the same |
| registered jobs (`register_jobs`) | their own trigger | where they ask (`add_job(only=...)`) |

With `--shard I/N` the leader is shard 1: the other shards only poll, so N shards never
send N copies of an alert. The outbox would not send copies anyway: a submission is one
`BEGIN IMMEDIATE` transaction and each (alert, episode, kind, channel) delivery is a
unique row, leased to one sender (tests/test_runtime.py runs two submitters at once).

**Consumption** needs no job: both stores materialise hourly and daily consumption in
their write path as the collectors forward samples (storage/), so a check sees every
sample the store holds.

**Jobs of later features** (e.g. the monthly-report reminders) register a factory:

    from civicwatt.runtime import register_jobs

    @register_jobs
    def monthly_reminders(rt: Runtime) -> None:
        rt.add_job(send_reminders, "cron", id="report-reminders", day=25, hour=9, args=[rt.outbox])

Every runtime calls every registered factory once at `start()`; `Runtime.add_job` wraps
the function so an error is logged and recorded in the heartbeat's `jobs` section, and
by default (`only="checks"`) adds it only in the process that runs the alert checks.

**Logging**: `configure_logging(fmt)` (called once by the CLI for the long-running
verbs, `--log-format text|json`) puts one handler on the root logger: the `civicwatt.*`
tree at INFO, everything else at WARNING; `json` writes one object per line (time,
level, logger, message and the record's extra fields) for log shippers.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from alerts.outbox import Outbox
from alerts.service import AlertService
from alerts.submission_reminders import send_reminders
from collectors.service import CollectorService
from core.health import HEARTBEAT_S, Heartbeat, health_dir, iso
from storage.submissions import SubmissionBook

log = logging.getLogger("civicwatt.runtime")

CHECK_INTERVAL_S = 900.0  # alert checks: at start-up and then every 15 minutes
LEADER_SHARD = 1  # the shard that runs store-wide jobs (checks, registered jobs)
REMINDER_HOUR = 9  # local hour of the daily submission-reminder job
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

JobFactory = Callable[["Runtime"], None]
_FACTORIES: list[JobFactory] = []


def register_jobs(factory: JobFactory) -> JobFactory:
    """Register `factory(runtime)`, called by every `Runtime.start()` to add its jobs
    with `runtime.add_job(...)`; usable as a decorator. Registering twice is a no-op."""
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)
    return factory


def unregister_jobs(factory: JobFactory) -> None:
    if factory in _FACTORIES:
        _FACTORIES.remove(factory)


@register_jobs
def submission_reminders(rt: Runtime) -> None:
    """Monthly-submission reminders (`alerts.submission_reminders`): every day at
    REMINDER_HOUR local and once at start-up (a process started after 09:00 on a reminder
    day still sends them; the outbox sends each day's message once)."""
    def run() -> None:
        book = SubmissionBook(rt.data_dir)
        try:
            today = pd.Timestamp.now(tz=rt.registry.timezone).date()
            sent = send_reminders(rt.registry, book, rt.outbox, today)
            if sent:
                log.info("submission reminders: %d queued", sent, extra={"reminders": sent})
        finally:
            book.close()

    rt.add_job(run, "cron", id="submission-reminders", hour=REMINDER_HOUR, timezone=rt.registry.timezone,
               next_run_time=datetime.now(rt.registry.tz))


def process_name(role: str, shard: tuple[int, int] = (1, 1)) -> str:
    """The heartbeat name of a process: `collect`, `collect-2of3`, `demo`."""
    return role if shard == (1, 1) else f"{role}-{shard[0]}of{shard[1]}"


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream: Any = None) -> logging.Handler:
    """One handler on the root logger (replacing one this function installed before):
    `civicwatt.*` at `level`, other libraries at WARNING; `fmt` "text" (one line,
    `time LEVEL logger: message`) or "json" (one JSON object per line). Python warnings
    go through it too."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_civicwatt", False)]:
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                                           rename_fields={"levelname": "level", "name": "logger"},
                                           json_ensure_ascii=False))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler._civicwatt = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("civicwatt").setLevel(level)
    logging.captureWarnings(True)
    return handler


def reset_logging() -> None:
    """Undo `configure_logging` (for a verb run inside another program, e.g. a test)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_civicwatt", False)]:
        root.removeHandler(h)
    logging.getLogger("civicwatt").setLevel(logging.NOTSET)
    logging.captureWarnings(False)


class Runtime:
    """Every scheduled job of one long-running process (module docstring).

    `queue_dir`: the collectors' disk queue; `data_dir`: the outbox and the health
    directory (`alerts.outbox.default_outbox_dir`: the embedded store's directory, else
    the registry's); `quotas`: a loaded quota config or None (then only the meter-data
    rules run); `channels`: the channels file or config (None: alerts are kept in the
    outbox for the dashboard, nothing is sent); `alerts=False`: no checks here."""

    def __init__(self, registry: Any, store: Any, queue_dir: str | Path, data_dir: str | Path, *,
                 role: str = "collect", shard: tuple[int, int] = (1, 1),
                 gateway_options: dict[str, Any] | None = None, interval_s: int | None = None,
                 quotas: Any = None, channels: Any = None, check_interval_s: float = CHECK_INTERVAL_S,
                 alerts: bool = True, upstream: Any = None):
        if check_interval_s < 1:
            raise ValueError("the check interval must be at least 1 second")
        self.registry = registry
        self.store = store
        self.shard = shard
        self.data_dir = Path(data_dir)
        self.name = process_name(role, shard)
        self.leader = shard[0] == LEADER_SHARD
        self.check_interval_s = float(check_interval_s)
        self.heartbeat = Heartbeat(health_dir(self.data_dir), self.name, role)
        self.collector = CollectorService(registry, store, queue_dir, shard=shard, gateway_options=gateway_options,
                                          interval_s=interval_s, heartbeat=self.heartbeat)
        polls = self.collector.meters.interval_s
        self.heartbeat.interval_s = min(HEARTBEAT_S, float(polls.min())) if len(polls) else HEARTBEAT_S
        self.scheduler = self.collector.scheduler
        self.jobs: dict[str, dict[str, Any]] = {}
        self.outbox: Outbox | None = None
        self.alerts: AlertService | None = None
        if not alerts:
            self.checks_off = "turned off (--no-alerts)"
        elif not self.leader:
            self.checks_off = f"run by shard {LEADER_SHARD}/{shard[1]}"
        else:
            self.checks_off = None
            self.outbox = Outbox(self.data_dir, channels)
            self.alerts = AlertService(store, registry, quotas, self.outbox, heartbeat=self.heartbeat)
        self.heartbeat.set("alerts", {"enabled": False, "reason": self.checks_off} if self.checks_off else
                           self.alerts.health())
        self.heartbeat.provide("jobs", lambda: {k: dict(v) for k, v in self.jobs.items()})
        # upward reporting (纵向直报): an UpstreamConfig, pushed from the leader
        self.upstream = None
        if upstream is not None and self.leader:
            from civicwatt.upstream import UpstreamPusher

            self.upstream = UpstreamPusher(upstream, store, registry, self.data_dir)
        self._started = False

    @property
    def runs_checks(self) -> bool:
        return self.alerts is not None

    def add_job(self, func: Callable[..., object], trigger: str = "interval", *, id: str,
                only: Literal["checks", "leader", "all"] = "checks", **trigger_args: Any) -> str | None:
        """Add a job to the scheduler (APScheduler 3.x `add_job` arguments: trigger
        "interval" | "cron" | "date" and its fields, `args`, `kwargs`, `next_run_time`),
        wrapped so an error is logged and recorded in the heartbeat's `jobs` section.
        `only`: "checks" (default) — only in the process that runs the alert checks;
        "leader" — in shard 1 even with --no-alerts; "all" — in every process.
        Returns the job id, or None when this process does not run it."""
        if (only == "checks" and not self.runs_checks) or (only == "leader" and not self.leader):
            return None
        record = self.jobs.setdefault(id, {"last_run_at": None, "ok": None, "error": None, "runs": 0})

        def run(*args: Any, **kwargs: Any) -> None:
            try:
                func(*args, **kwargs)
                record.update(ok=True, error=None)
            except Exception as exc:  # a job logs and carries on
                log.exception("job %s failed", id)
                record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            record.update(last_run_at=iso(time.time()), runs=record["runs"] + 1)

        trigger_args.setdefault("coalesce", True)
        trigger_args.setdefault("max_instances", 1)
        self.scheduler.add_job(run, trigger, id=id, name=id, replace_existing=True, **trigger_args)
        return id

    def start(self) -> Runtime:
        """Start polling, the jobs and the heartbeat; the first check runs at once."""
        if self._started:
            return self
        if self.alerts is not None:
            self.alerts.add_jobs(self.scheduler, check_interval_s=self.check_interval_s)
        if self.upstream is not None:
            self.add_job(self.upstream.run_once, "interval", id="upstream-push", only="leader",
                         seconds=self.upstream.config.interval_s, next_run_time=datetime.now(UTC))
        for factory in list(_FACTORIES):
            try:
                factory(self)
            except Exception:
                log.exception("registered jobs %s could not be added", getattr(factory, "__name__", factory))
        self.collector.start()
        self.heartbeat.start()
        self._started = True
        log.info("runtime %s: %d meters; alert checks %s", self.name, len(self.collector.meter_ids),
                 f"every {self.check_interval_s:g} s" if self.alerts else self.checks_off,
                 extra={"process_name": self.name, "checks": self.runs_checks})
        return self

    def stop(self, flush_timeout_s: float = 30.0) -> bool:
        """Stop the jobs (waiting for one that runs), send the queue to the store (up to
        `flush_timeout_s`), and leave the heartbeat saying "stopped". True when the
        queue is empty."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        empty = self.collector.stop(flush_timeout_s=flush_timeout_s)
        self.heartbeat.stop()
        self._started = False
        return empty

    def close(self) -> None:
        """Stop (if running) and close the queue."""
        if self._started:
            self.stop()
        self.collector.queue.close()
