"""Running the alert rules on a schedule (APScheduler 3.x).

    from alerts.service import AlertService
    svc = AlertService(store, registry, quotas_cfg, Outbox(dir, "channels.yaml"), heartbeat=hb)
    svc.add_jobs(scheduler, check_interval_s=900)  # checks now and every 15 min, daily check, delivery

* `check(at=None, rules=ALL_RULES)`: the rules, submitted as one complete evaluation
  of those rules (their alerts that no longer hold are resolved), then a delivery pass.
* `scheduled_check()`: the job run once at start-up and then every `check_interval_s`:
  the meter-data rules every time, the quota rules (targets and standards) at the
  first run, on a new local day, and at least every `QUOTA_EVERY_S` (an hour) — they
  are computed from complete days, so more often only repeats the same answer. A
  breach present at start-up is therefore found at start-up. `before_check` (the
  runtime's consumption upkeep) runs first.
* `daily()` at `daily_at` (06:00 local, after the night's data): every rule, then
  pruning sent notifications and resolved alerts older than `KEEP_DAYS`.
* A delivery job every `retry_every_s` (60 s) sends what is due: without it a channel
  that was down would only get its queued notifications at the next check.

Every job catches and logs its own errors: a failing check must not stop the
scheduler (and the collectors it runs). Each run is recorded in `health()`, the
`alerts` section of the process heartbeat (`core.health`), pushed to `heartbeat`
when one is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from alerts.outbox import DeliveryResult, Outbox, SubmitResult
from alerts.record import Alert
from alerts.rules import ALL_RULES, METER_RULES, QUOTA_RULES, evaluate_alerts
from core.health import iso

log = logging.getLogger("civicwatt.alerts")

DAILY_AT = "06:00"  # local time of the daily check: after the night's rollups
RETRY_EVERY_S = 60
KEEP_DAYS = 400  # sent notifications and resolved alerts kept a little over a year
QUOTA_EVERY_S = 3600.0  # the quota rules in a scheduled check: at most this far apart


class AlertService:
    """The alert rules of one registry and store, run as scheduler jobs into one outbox."""

    def __init__(self, store, registry, quotas_cfg, outbox: Outbox, factors=None, heartbeat: Any = None,
                 before_check: Callable[[], object] | None = None, clock: Callable[[], float] = time.time):
        self.store = store
        self.registry = registry
        self.quotas = quotas_cfg
        self.outbox = outbox
        self.factors = factors
        self.heartbeat = heartbeat
        self.before_check = before_check
        self.clock = clock
        self.check_interval_s: float | None = None
        self._lock = threading.Lock()  # one evaluation at a time
        self._quota_done: tuple[float, date] | None = None  # when the quota rules last ran, and the local day
        self._health: dict[str, Any] = {"enabled": True, "check_interval_s": None, "last_run_at": None,
                                        "last_run_ok": None, "error": None, "runs": 0, "failed_runs": 0,
                                        "delivered": 0, "delivery_failed": 0}

    # -- evaluation -----------------------------------------------------------------
    def check(self, at: date | None = None, rules: tuple[str, ...] = ALL_RULES
              ) -> tuple[list[Alert], SubmitResult, DeliveryResult]:
        """Evaluate `rules` at `at` (default today), submit, deliver."""
        with self._lock:
            alerts = evaluate_alerts(self.store, self.registry, self.quotas, at, factors=self.factors, rules=rules)
            res = self.outbox.submit(alerts, rules=rules)
        sent = self.outbox.deliver_pending()
        log.info("alerts: %d holding, %d opened, %d reminded, %d resolved; %d sent, %d failed, %d queued",
                 len(alerts), len(res.opened), len(res.reminded), len(res.resolved), sent.sent, sent.failed,
                 sent.pending, extra={"holding": len(alerts), "opened": len(res.opened), "sent": sent.sent,
                                      "failed": sent.failed, "queued": sent.pending})
        self._record(rules, alerts=alerts, res=res, sent=sent)
        return alerts, res, sent

    def _quota_due(self) -> bool:
        if self.quotas is None:
            return False
        if self._quota_done is None:
            return True
        t, day = self._quota_done
        return self.clock() - t >= QUOTA_EVERY_S - 1.0 or self._today() != day

    def _today(self) -> date:
        return pd.Timestamp(self.clock(), unit="s", tz="UTC").tz_convert(self.registry.timezone).date()

    def scheduled_check(self) -> None:
        """The periodic job: meter rules always, quota rules when due (module docstring)."""
        quota = self._quota_due()
        rules = ALL_RULES if quota else METER_RULES
        started = self.clock()

        def run() -> None:
            if self.before_check is not None:
                self.before_check()
            self.check(rules=rules)
            if quota:
                self._quota_done = (started, self._today())

        self._safe(run, "alert check", rules)

    def daily(self) -> None:
        self._safe(self.check, "daily alert check", ALL_RULES)
        self._safe(lambda: self.outbox.prune(KEEP_DAYS), "outbox pruning")

    def deliver(self) -> None:
        def run() -> None:
            sent = self.outbox.deliver_pending()
            if sent.sent or sent.failed:
                self._count_delivery(sent)

        self._safe(run, "alert delivery")

    # -- health ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The `alerts` section of the heartbeat (format: `core.health`)."""
        return dict(self._health)

    def _count_delivery(self, sent: DeliveryResult) -> None:
        self._health.update(delivered=self._health["delivered"] + sent.sent,
                            delivery_failed=self._health["delivery_failed"] + sent.failed, pending=sent.pending)
        self._push()

    def _record(self, rules: tuple[str, ...], alerts=None, res=None, sent=None, error: str | None = None) -> None:
        h = self._health
        h.update(check_interval_s=self.check_interval_s, last_run_at=iso(self.clock()), last_run_ok=error is None,
                 error=error, runs=h["runs"] + 1, failed_runs=h["failed_runs"] + (error is not None),
                 rules="all" if set(QUOTA_RULES) <= set(rules) else "meter")
        if error is None:
            h.update(holding=len(alerts), opened=len(res.opened), reminded=len(res.reminded),
                     resolved=len(res.resolved), sent=sent.sent, failed=sent.failed)
            self._count_delivery(sent)
        else:
            self._push()

    def _push(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.set("alerts", dict(self._health))
            self.heartbeat.beat()

    def _safe(self, fn, what: str, rules: tuple[str, ...] | None = None) -> None:
        try:
            fn()
        except Exception as exc:  # a scheduled job logs and carries on
            log.exception("%s failed", what)
            if rules is not None:
                self._record(rules, error=f"{type(exc).__name__}: {exc}")

    # -- scheduling -------------------------------------------------------------------
    def add_jobs(self, scheduler, daily_at: str = DAILY_AT, retry_every_s: float = RETRY_EVERY_S,
                 check_interval_s: float | None = None) -> list[str]:
        """Add the daily check and the delivery job to an APScheduler 3.x scheduler, and
        with `check_interval_s` the scheduled check, first run at once; returns the job ids."""
        hour, minute = (int(x) for x in daily_at.split(":"))
        scheduler.add_job(self.daily, "cron", hour=hour, minute=minute, timezone=self.registry.timezone,
                          id="alerts-daily", replace_existing=True, coalesce=True, max_instances=1)
        scheduler.add_job(self.deliver, "interval", seconds=retry_every_s, id="alerts-deliver",
                          replace_existing=True, coalesce=True, max_instances=1)
        ids = ["alerts-daily", "alerts-deliver"]
        if check_interval_s is not None:
            self.check_interval_s = float(check_interval_s)
            self._health["check_interval_s"] = self.check_interval_s
            scheduler.add_job(self.scheduled_check, "interval", seconds=check_interval_s, id="alerts-check",
                              next_run_time=datetime.now(UTC), replace_existing=True, coalesce=True,
                              max_instances=1, misfire_grace_time=None)
            ids.append("alerts-check")
        return ids
