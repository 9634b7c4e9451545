"""Submission reminders (alerts.submission_reminders) through a real webhook on loopback: one message per institution
per reminder day, overdue notices per region, and the runtime job that sends them."""

from __future__ import annotations

import time
from datetime import date

import pytest

from alerts.channels import ChannelsConfig, WebhookChannel
from alerts.outbox import Outbox
from alerts.submission_reminders import send_reminders
from civicwatt.runtime import Runtime
from quotas.filing import approve, return_month, submit
from tests.support_alerts_servers import WebhookServer
from tests.support_filing_world import ADMIN, MONTH, good_items, make_filing


@pytest.fixture
def world(tmp_path):
    hook = WebhookServer().start()
    filing = make_filing(tmp_path)
    box = Outbox(tmp_path / "store", ChannelsConfig(channels=[WebhookChannel(name="hook", url=hook.url)]))
    yield filing, box, hook, tmp_path
    hook.stop()
    filing.store.close()
    filing.book.close()


def bodies(hook: WebhookServer) -> list[dict]:
    return [r["body"] for r in hook.received]


def send(filing, box, day: date) -> int:
    return send_reminders(filing.registry, filing.book, box, day)


def test_one_reminder_per_institution_per_reminder_day(world):
    filing, box, hook, tmp_path = world
    reg = filing.registry
    for iid in ("HB-0002", "HB-0003", "HB-0004"):
        assert submit(ADMIN, {"institution_id": iid, "month": MONTH, "items": good_items(reg, iid),
                              "reasons": {"YOY_CHANGE": "-", "PEER_INTENSITY": "-"}}, filing).status == 201
    approve(ADMIN, "HB-0004", MONTH, None, filing)
    return_month(ADMIN, "HB-0003", MONTH, {"comment": "请核对"}, filing)
    assert send(filing, box, date(2026, 12, 9)) == 0  # not a reminder day
    sent = send(filing, box, date(2026, 12, 10))
    expected = sorted({i.id for i in reg.institutions} - {"HB-0002", "HB-0004"})  # HB-0003 was returned
    assert sorted(b["institution_id"] for b in bodies(hook)) == expected and sent == len(expected)
    first = next(b for b in bodies(hook) if b["institution_id"] == "HB-0003")
    assert first["rule"] == "submission_reminder" and "已退回" in first["message_zh"]
    assert first["notification"] == "message"
    assert "2026-12-15" in first["message_zh"] and first["idempotency_key"]
    # the job again the same day, and a second process on the same outbox: nothing more
    assert send(filing, box, date(2026, 12, 10)) == 0
    other = Outbox(tmp_path / "store", ChannelsConfig(channels=[WebhookChannel(name="hook", url=hook.url)]))
    assert send(filing, other, date(2026, 12, 10)) == 0
    assert len(hook.received) == len(expected)
    assert box.list_alerts(open_only=False) == []  # messages, not alerts: nothing left open on the alert page
    # the 14th: one more each, for those still not submitted
    submit(ADMIN, {"institution_id": "HB-0005", "month": MONTH, "items": good_items(reg, "HB-0005"),
                   "reasons": {"YOY_CHANGE": "-", "PEER_INTENSITY": "-"}}, filing)
    send(filing, box, date(2026, 12, 14))
    per_day = {}
    for b in bodies(hook):
        per_day.setdefault(b["key"].rsplit("@", 1)[1], []).append(b["institution_id"])
    assert sorted(per_day["2026-12-14"]) == [i for i in expected if i != "HB-0005"]
    assert all(len(v) == len(set(v)) for v in per_day.values())


def test_overdue_institutions_are_reported_to_their_region_once(world):
    filing, box, hook, _ = world
    reg = filing.registry
    for inst in reg.institutions:
        if inst.region == "bd" and inst.id != "HB-0006":
            submit(ADMIN, {"institution_id": inst.id, "month": MONTH, "items": good_items(reg, inst.id),
                           "reasons": {"YOY_CHANGE": "-", "PEER_INTENSITY": "-", "MISSING_ITEM": "-"}}, filing)
    assert send(filing, box, date(2026, 12, 15)) == 0  # the deadline itself: no reminder day, not yet overdue
    send(filing, box, date(2026, 12, 16))
    send(filing, box, date(2026, 12, 16))
    notices = {b["scope"]: b for b in bodies(hook)}
    assert len(hook.received) == 2 and set(notices) == {"region:bd", "region:sjz"}
    assert notices["region:bd"]["extra"]["institutions"] == ["HB-0006"]
    assert "HB-0006" in notices["region:bd"]["message_zh"] and "1 家单位" in notices["region:bd"]["message_zh"]
    assert notices["region:sjz"]["actual"] == 7.0  # every sjz institution is overdue
    assert send(filing, box, date(2026, 12, 17)) == 0


def test_runtime_runs_the_reminder_job(world):
    filing, _, _, tmp_path = world
    rt = Runtime(filing.registry, filing.store, tmp_path / "q", tmp_path / "store", check_interval_s=3600).start()
    try:
        deadline = time.monotonic() + 20
        while not rt.jobs.get("submission-reminders", {}).get("runs") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.jobs["submission-reminders"]["ok"] is True
        assert "submission-reminders" in {j.id for j in rt.scheduler.get_jobs()}
    finally:
        rt.stop(flush_timeout_s=2)
        rt.close()
