"""AlertService on a real APScheduler: a webhook down at first gets its alert exactly once.

The delivery job retries the webhook and delivers once when it is back."""

from __future__ import annotations

import time
from datetime import date

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.channels import ChannelsConfig, WebhookChannel
from alerts.outbox import Outbox
from alerts.service import AlertService
from quotas.config import QuotaConfig, Target
from tests.support_alerts_servers import WebhookServer
from tests.support_ledger_world import open_world


def test_service_jobs_retry_until_delivered(tmp_path):
    registry, store, _, _ = open_world(tmp_path)
    cfg = QuotaConfig(targets=(Target(id="g1", year=2024, institution="G1", limits={"energy_tce": 100}),))
    hook = WebhookServer()  # down
    outbox = Outbox(tmp_path / "outbox", ChannelsConfig(channels=[WebhookChannel(name="hook", url=hook.url,
                                                                                 timeout_s=1)],
                                                        retry_base_s=0.2, retry_max_s=0.4))
    svc = AlertService(store, registry, cfg, outbox)
    sched = BackgroundScheduler()
    try:
        assert svc.add_jobs(sched, retry_every_s=0.1) == ["alerts-daily", "alerts-deliver"]
        alerts, _, sent = svc.check(at=date(2024, 12, 1))
        assert [a.rule for a in alerts] == ["dual_control_exceeded"] and sent.failed == 1
        sched.start()
        time.sleep(0.5)
        hook.start()
        deadline = time.monotonic() + 10
        while not hook.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # several more delivery passes
        assert [b["rule"] for b in hook.bodies] == ["dual_control_exceeded"]
        assert outbox.list_deliveries(status="pending") == []
        assert outbox.list_deliveries()[0]["attempts"] >= 2
    finally:
        sched.shutdown(wait=True)
        hook.stop()
        store.close()
