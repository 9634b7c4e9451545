"""Running the alert rules on a schedule (APScheduler 3.x).

    from alerts.service import AlertService
    svc = AlertService(store, registry, quotas_cfg, Outbox(dir, "channels.yaml"))
    svc.add_jobs(scheduler)          # daily full check + delivery retries every minute

* `check(at=None)`: every rule, submitted as one complete evaluation (alerts that no
  longer hold are resolved), then a delivery pass. Scheduled daily at `daily_at`
  (06:00 local by default, after the night's rollups), followed by pruning sent
  notifications and resolved alerts older than `KEEP_DAYS`.
* A delivery job every `retry_every_s` (60 s) sends what is due: without it a channel
  that was down would only get its queued notifications at the next check.

Every job catches and logs its own errors: a failing check must not stop the
scheduler (and the collectors it runs).
"""

from __future__ import annotations

import logging
import threading
from datetime import date

from alerts.outbox import DeliveryResult, Outbox, SubmitResult
from alerts.record import Alert
from alerts.rules import ALL_RULES, evaluate_alerts

log = logging.getLogger("civicwatt.alerts")

DAILY_AT = "06:00"  # local time of the daily check: after the night's rollups
RETRY_EVERY_S = 60
KEEP_DAYS = 400  # sent notifications and resolved alerts kept a little over a year


class AlertService:
    """The alert rules of one registry and store, run as scheduler jobs into one outbox."""

    def __init__(self, store, registry, quotas_cfg, outbox: Outbox, factors=None):
        self.store = store
        self.registry = registry
        self.quotas = quotas_cfg
        self.outbox = outbox
        self.factors = factors
        self._lock = threading.Lock()  # one evaluation at a time

    def check(self, at: date | None = None, rules: tuple[str, ...] = ALL_RULES
              ) -> tuple[list[Alert], SubmitResult, DeliveryResult]:
        """Evaluate `rules` at `at` (default today), submit, deliver."""
        with self._lock:
            alerts = evaluate_alerts(self.store, self.registry, self.quotas, at, factors=self.factors, rules=rules)
            res = self.outbox.submit(alerts, rules=rules)
        sent = self.outbox.deliver_pending()
        log.info("alerts: %d holding, %d opened, %d reminded, %d resolved; %d sent, %d failed, %d queued",
                 len(alerts), len(res.opened), len(res.reminded), len(res.resolved), sent.sent, sent.failed,
                 sent.pending)
        return alerts, res, sent

    def daily(self) -> None:
        self._safe(self.check, "daily alert check")
        self._safe(lambda: self.outbox.prune(KEEP_DAYS), "outbox pruning")

    def deliver(self) -> None:
        self._safe(self.outbox.deliver_pending, "alert delivery")

    @staticmethod
    def _safe(fn, what: str) -> None:
        try:
            fn()
        except Exception:  # a scheduled job logs and carries on
            log.exception("%s failed", what)

    def add_jobs(self, scheduler, daily_at: str = DAILY_AT, retry_every_s: float = RETRY_EVERY_S) -> list[str]:
        """Add the daily check and the delivery job to an APScheduler 3.x scheduler;
        returns the job ids."""
        hour, minute = (int(x) for x in daily_at.split(":"))
        scheduler.add_job(self.daily, "cron", hour=hour, minute=minute, timezone=self.registry.timezone,
                          id="alerts-daily", replace_existing=True, coalesce=True, max_instances=1)
        scheduler.add_job(self.deliver, "interval", seconds=retry_every_s, id="alerts-deliver",
                          replace_existing=True, coalesce=True, max_instances=1)
        return ["alerts-daily", "alerts-deliver"]
