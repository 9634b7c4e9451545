"""The outbox and its channels against real loopback servers (HTTP and SMTP)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from alerts.channels import (
    ChannelsConfig,
    EmailChannel,
    JsonlChannel,
    WebhookChannel,
    load_channels,
)
from alerts.outbox import Outbox
from alerts.record import ALERT_FIELDS, Alert
from core.yamlfile import ConfigError
from tests.support_alerts_servers import SmtpServer, WebhookServer, make_cert

T0 = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)
INTERFACE_FIELDS = {"rule", "severity", "institution_id", "scope", "indicator", "period", "actual", "limit",
                    "projected", "message_zh", "message_en", "first_seen", "key"}


def alert(actual: float = 120.0, rule: str = "total_exceeded", inst: str = "HB-0001",
          severity: str = "critical") -> Alert:
    return Alert.new(rule, severity, f"institution:{inst}", "energy_tce", "2025",
                     message_zh=f"{inst} 年度综合能耗 {actual} tce 超过双控目标 100 tce",
                     message_en=f"{inst} annual energy {actual} tce exceeds the 100 tce target",
                     first_seen=T0.isoformat(), institution_id=inst, actual=actual, limit=100.0, unit="tce")


@pytest.fixture
def hook():
    server = WebhookServer().start()
    yield server
    server.stop()


def config(*channels, reminder_hours: float = 24.0, base_s: float = 60.0) -> ChannelsConfig:
    return ChannelsConfig(channels=list(channels), reminder_hours=reminder_hours, retry_base_s=base_s,
                          retry_max_s=3600.0)


def test_webhook_open_once_then_resolved(tmp_path, hook):
    box = Outbox(tmp_path / "outbox", config(WebhookChannel(name="hook", url=hook.url)))
    assert box.submit([alert()], now=T0).opened == [alert().key]
    assert box.deliver_pending(now=T0).sent == 1
    # The same open condition evaluated again (with a new value): nothing is sent.
    box.submit([alert(125.0)], now=T0 + timedelta(hours=1))
    assert box.deliver_pending(now=T0 + timedelta(hours=1)).sent == 0
    # Condition clears: one resolved message.
    assert box.submit([], now=T0 + timedelta(hours=2)).resolved == [alert().key]
    box.deliver_pending(now=T0 + timedelta(hours=2))
    box.deliver_pending(now=T0 + timedelta(hours=3))
    kinds = [b["notification"] for b in hook.bodies]
    assert kinds == ["open", "resolved"]
    first = hook.bodies[0]
    assert set(first) >= INTERFACE_FIELDS
    assert first["actual"] == 120.0 and first["limit"] == 100.0 and first["key"] == alert().key
    assert first["first_seen"] == T0.isoformat()
    assert hook.bodies[1]["actual"] == 125.0  # the resolved message carries the last values
    assert hook.bodies[1]["resolved_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert hook.received[0]["headers"]["X-CivicWatt-Delivery"] != hook.received[1]["headers"]["X-CivicWatt-Delivery"]


def test_down_webhook_gets_alert_exactly_once_when_back(tmp_path):
    hook = WebhookServer()  # not started: connection refused
    log = tmp_path / "alerts.jsonl"
    box = Outbox(tmp_path / "outbox", config(WebhookChannel(name="hook", url=hook.url, timeout_s=2),
                                             JsonlChannel(name="log", path=str(log)), base_s=60))
    box.submit([alert()], now=T0)
    r = box.deliver_pending(now=T0)
    assert (r.sent, r.failed, r.pending) == (1, 1, 1)  # the log got it, the webhook did not
    assert box.deliver_pending(now=T0 + timedelta(seconds=30)).failed == 0  # back-off: not due yet
    r = box.deliver_pending(now=T0 + timedelta(seconds=61))
    assert r.failed == 1  # second attempt, still down; next in 120 s
    pending = box.list_deliveries(status="pending")
    assert len(pending) == 1 and pending[0]["attempts"] == 2 and "ConnectError" in pending[0]["last_error"]
    hook.start()
    try:
        assert box.deliver_pending(now=T0 + timedelta(seconds=62)).sent == 0  # still backing off
        assert box.deliver_pending(now=T0 + timedelta(seconds=61 + 121)).sent == 1
        for k in range(5):
            box.deliver_pending(now=T0 + timedelta(hours=1 + k))
        assert len(hook.bodies) == 1 and hook.bodies[0]["key"] == alert().key
        lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
        assert len(lines) == 1 and lines[0]["message_zh"].startswith("HB-0001 年度")
    finally:
        hook.stop()


def test_reminders_acknowledge_and_restart(tmp_path, hook):
    channels = config(WebhookChannel(name="hook", url=hook.url), reminder_hours=24)
    box = Outbox(tmp_path / "outbox", channels)
    other = alert(inst="HB-0002")
    box.submit([alert(), other], now=T0)
    box.submit([alert(), other], now=T0 + timedelta(hours=12))  # not due
    box.submit([alert(), other], now=T0 + timedelta(hours=23, minutes=45))  # not due (the grace is 10 min)
    # A restart: a new Outbox on the same directory keeps the state.
    box = Outbox(tmp_path / "outbox", channels)
    assert sorted(box.submit([alert(), other], now=T0 + timedelta(hours=25)).reminded) == sorted([alert().key, other.key])
    assert box.acknowledge(other.key, "li.wei", now=T0 + timedelta(hours=26))
    assert not box.acknowledge("no/such/key", "li.wei")
    res = box.submit([alert(), other], now=T0 + timedelta(hours=50))
    assert res.reminded == [alert().key]  # 25 h after the last reminder; the acknowledged one is quiet
    box.deliver_pending(now=T0 + timedelta(hours=50))
    seq = [(b["institution_id"], b["notification"], b.get("reminder")) for b in hook.bodies]
    assert seq == [("HB-0001", "open", None), ("HB-0002", "open", None), ("HB-0001", "reminder", 1),
                   ("HB-0002", "reminder", 1), ("HB-0001", "reminder", 2)]
    listed = {a["key"]: a for a in box.list_alerts(open_only=True)}
    assert listed[other.key]["acknowledged_by"] == "li.wei" and listed[alert().key]["reminders"] == 2
    # Only HB-0002 clears.
    box.submit([alert()], now=T0 + timedelta(hours=51))
    assert [a["key"] for a in box.list_alerts(open_only=True)] == [alert().key]
    assert len(box.list_alerts(open_only=False)) == 2


def test_projected_superseded_by_actual_and_partial_rules(tmp_path):
    log = tmp_path / "log.jsonl"
    box = Outbox(tmp_path / "outbox", config(JsonlChannel(name="log", path=str(log))))
    projected = alert(rule="projected_breach", severity="warning")
    box.submit([projected], now=T0)
    # An evaluation that covers only the meter rules leaves quota alerts alone.
    assert box.submit([], now=T0 + timedelta(hours=1), rules=["meter_offline"]).resolved == []
    res = box.submit([alert()], now=T0 + timedelta(hours=2))
    assert res.opened == [alert().key] and res.resolved == [projected.key]
    box.deliver_pending(now=T0 + timedelta(hours=2))
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [(x["rule"], x["notification"]) for x in lines] == [
        ("projected_breach", "open"), ("total_exceeded", "open"), ("projected_breach", "resolved")]
    assert lines[2]["resolution"] == "superseded by total_exceeded" and lines[2]["superseded_by"] == alert().key


def test_min_severity_filter(tmp_path, hook):
    box = Outbox(tmp_path / "o", config(WebhookChannel(name="hook", url=hook.url, min_severity="critical")))
    box.submit([alert(rule="projected_breach", severity="warning"), alert()], now=T0)
    box.deliver_pending(now=T0)
    assert [b["rule"] for b in hook.bodies] == ["total_exceeded"]


def test_wecom_and_dingtalk_formats(tmp_path):
    wecom = WebhookServer(reply={"errcode": 0, "errmsg": "ok"}).start()
    ding = WebhookServer(reply={"errcode": 0, "errmsg": "ok"}).start()
    try:
        box = Outbox(tmp_path / "o", config(
            WebhookChannel(name="wecom", url=wecom.url + "?key=abc", format="wecom"),
            WebhookChannel(name="ding", url=ding.url + "?access_token=t", format="dingtalk", secret="SECxyz",
                           language="zh")))
        box.submit([alert()], now=T0)
        assert box.deliver_pending(now=T0).sent == 2
        body = wecom.bodies[0]
        assert body["msgtype"] == "markdown"
        assert "超过双控目标" in body["markdown"]["content"] and "exceeds the 100 tce target" in body["markdown"]["content"]
        dbody = ding.bodies[0]
        assert dbody["msgtype"] == "markdown" and "超过双控目标" in dbody["markdown"]["text"]
        assert "exceeds" not in dbody["markdown"]["text"]  # language: zh
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(ding.received[0]["path"]).query)
        stamp = q["timestamp"][0]
        expect = base64.b64encode(hmac.new(b"SECxyz", f"{stamp}\nSECxyz".encode(), hashlib.sha256).digest()).decode()
        assert q["sign"][0] == expect and q["access_token"] == ["t"]
        # A robot that refuses (rate limit) is retried, not dropped.
        wecom.reply = {"errcode": 45009, "errmsg": "api freq out of limit"}
        box.submit([], now=T0 + timedelta(hours=1))
        r = box.deliver_pending(now=T0 + timedelta(hours=1))
        assert r.failed == 1 and "45009" in r.errors[0]
        wecom.reply = {"errcode": 0, "errmsg": "ok"}
        assert box.deliver_pending(now=T0 + timedelta(hours=2)).sent == 1
        assert [("解除" in b["markdown"]["content"]) for b in wecom.bodies] == [False, True, True]
    finally:
        wecom.stop()
        ding.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


def test_email_starttls_auth_and_down_at_first(tmp_path, cert):
    smtp = SmtpServer(*cert)
    mail = EmailChannel(name="mail", host="127.0.0.1", port=smtp.port, security="starttls", username="alerts",
                        password="s3cret", ca_file=str(cert[0]), sender="civicwatt@example.cn",
                        to=("energy@example.cn", "boss@example.cn"), timeout_s=5)
    box = Outbox(tmp_path / "o", config(mail, base_s=10))
    box.submit([alert()], now=T0)
    assert box.deliver_pending(now=T0).failed == 1  # server not running yet
    smtp.start()
    try:
        assert box.deliver_pending(now=T0 + timedelta(seconds=11)).sent == 1
        assert box.deliver_pending(now=T0 + timedelta(hours=1)).sent == 0
        assert len(smtp.messages) == 1
        got = smtp.messages[0]
        assert got["tls"] and got["to"] == ["energy@example.cn", "boss@example.cn"]
        msg = got["message"]
        assert "超过双控目标" in msg["Subject"] and "exceeds" in msg["Subject"]
        text = msg.get_body(("plain",)).get_content()
        assert "年度综合能耗" in text and "annual energy" in text
        att = next(p for p in msg.iter_attachments() if p.get_filename() == "alert.json")
        payload = json.loads(att.get_content())
        assert set(payload) >= INTERFACE_FIELDS and payload["actual"] == 120.0
        # Wrong password: the server refuses, the delivery stays queued.
        box2 = Outbox(tmp_path / "o2", config(EmailChannel(**{**mail.__dict__, "password": "wrong"})))
        box2.submit([alert()], now=T0)
        r = box2.deliver_pending(now=T0)
        assert r.failed == 1 and "Authentication" in r.errors[0]
    finally:
        smtp.stop()


def test_alert_record_fields():
    a = alert()
    d = a.to_dict()
    assert set(ALERT_FIELDS) == set(d) and set(d) >= INTERFACE_FIELDS
    assert Alert.from_dict(json.loads(a.to_json())) == a
    assert a.key == "total_exceeded/institution:HB-0001/energy_tce/2025"
    with pytest.raises(ValueError):
        Alert.new("r", "fatal", "s", "i", "p", message_zh="", message_en="", first_seen="")


def test_channels_file_errors_name_file_line_field(tmp_path, monkeypatch):
    path = tmp_path / "channels.yaml"
    path.write_text(
        "reminder_hours: 12\n"
        "channels:\n"
        "  - {name: a, type: webhook, url: ftp://x}\n"
        "  - name: m\n"
        "    type: email\n"
        "    host: smtp.x\n"
        "    to: nobody\n"
        "    password_env: CW_TEST_NO_SUCH_VAR\n"
        "  - {name: l, type: jsonl, colour: red}\n"
        "  - {name: z, type: pager}\n", encoding="utf-8")
    monkeypatch.delenv("CW_TEST_NO_SUCH_VAR", raising=False)
    with pytest.raises(ConfigError) as exc:
        load_channels(path)
    got = {(p.line, p.field) for p in exc.value.problems}
    assert got == {(3, "channels[0].url"), (7, "channels[1].to"), (8, "channels[1].password_env"),
                   (9, "channels[2].colour"), (10, "channels[3].type")}
    assert all(p.file == str(path) for p in exc.value.problems)
    monkeypatch.setenv("SMTP_PW", "pw")
    path.write_text("reminder_hours: 6\nretry: {base_s: 5, max_s: 50}\nchannels:\n"
                    "  - {name: mail, type: email, host: h, to: a@b.c, password_env: SMTP_PW}\n"
                    "  - {name: log, type: jsonl, path: logs/a.jsonl}\n", encoding="utf-8")
    cfg = load_channels(path)
    assert cfg.reminder_hours == 6 and cfg.retry_base_s == 5 and cfg.retry_max_s == 50
    assert cfg.channels[0].password == "pw" and cfg.channels[0].port == 587
    assert cfg.channels[1].path == str((tmp_path / "logs" / "a.jsonl").resolve())



from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sets(st.sampled_from(["A", "B", "C"])), st.integers(min_value=1, max_value=30)),
                min_size=1, max_size=12))
def test_outbox_sequences_are_well_formed(tmp_path_factory, steps):
    """Any sequence of evaluations: per alert, open (reminder)* resolved, repeated; a
    reminder only after reminder_hours without notice; each notification sent once."""
    d = tmp_path_factory.mktemp("seq")
    log = d / "log.jsonl"
    box = Outbox(d / "o", config(JsonlChannel(name="log", path=str(log)), reminder_hours=24))
    now = T0
    expected_open: set[str] = set()
    sent: list[tuple[datetime, dict]] = []
    for present, hours in steps:
        now = now + timedelta(hours=hours)
        box.submit([alert(inst=i) for i in present], now=now)
        box.deliver_pending(now=now)
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        sent += [(now, json.loads(x)) for x in lines[len(sent):]]
        expected_open = {alert(inst=i).key for i in present}
    assert {a["key"] for a in box.list_alerts(open_only=True)} == expected_open
    by_key: dict[str, list[tuple[datetime, dict]]] = {}
    for t, x in sent:
        by_key.setdefault(x["key"], []).append((t, x))
    for key, seq in by_key.items():
        state, last = "closed", None
        for t, x in seq:
            kind = x["notification"]
            if kind == "open":
                assert state == "closed"
                state = "open"
            elif kind == "reminder":
                assert state == "open" and t - last >= timedelta(hours=24) - timedelta(minutes=10)
            else:
                assert state == "open" and kind == "resolved"
                state = "closed"
            last = t
        assert (state == "open") == (key in expected_open)
    ids = {(x["key"], x["episode"], x["notification"], x.get("reminder")) for _, x in sent}
    assert len(ids) == len(sent)


def test_sample_channels_file_parses(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "alerts" / "sample_channels.yaml"
    copy = tmp_path / "channels.yaml"
    copy.write_text(sample.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = load_channels(copy)
    assert [c.name for c in cfg.channels] == ["log"] and cfg.reminder_hours == 24
    assert cfg.channels[0].path == str(tmp_path / "alerts.jsonl")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_implicit_tls(tmp_path, cert):
    smtp = SmtpServer(*cert, implicit_tls=True).start()
    try:
        mail = EmailChannel(name="mail", host="127.0.0.1", port=smtp.port, security="ssl", username="alerts",
                            password="s3cret", ca_file=str(cert[0]), to=("a@example.cn",), language="en")
        box = Outbox(tmp_path / "o", config(mail))
        box.submit([alert()], now=T0)
        assert box.deliver_pending(now=T0).sent == 1
        msg = smtp.messages[0]["message"]
        assert msg["Subject"].strip().startswith("[CivicWatt alert]") and "超过" not in msg.get_body(("plain",)).get_content()
    finally:
        smtp.stop()


def test_two_senders_share_an_outbox_without_double_sending(tmp_path):
    import threading

    hook = WebhookServer(delay_s=0.3).start()
    try:
        channels = config(WebhookChannel(name="hook", url=hook.url))
        a, b = Outbox(tmp_path / "o", channels), Outbox(tmp_path / "o", channels)
        a.submit([alert(inst=f"I{n}") for n in range(3)], now=T0)
        results = []
        threads = [threading.Thread(target=lambda box=box: results.append(box.deliver_pending(now=T0)))
                   for box in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.sent for r in results) == [0, 3]
        assert sorted(x["institution_id"] for x in hook.bodies) == ["I0", "I1", "I2"]
    finally:
        hook.stop()


def test_prune_keeps_open_and_pending(tmp_path):
    log = tmp_path / "log.jsonl"
    box = Outbox(tmp_path / "o", config(JsonlChannel(name="log", path=str(log))))
    box.submit([alert(inst="OLD"), alert(inst="KEEP")], now=T0)
    box.deliver_pending(now=T0)
    box.submit([alert(inst="KEEP")], now=T0 + timedelta(days=1))  # OLD resolves
    box.deliver_pending(now=T0 + timedelta(days=1))
    assert box.prune(keep_days=30, now=T0 + timedelta(days=10)) == 0
    # sent: OLD open, KEEP open, KEEP's reminder (24 h later), OLD resolved; and OLD itself
    assert box.prune(keep_days=30, now=T0 + timedelta(days=100)) == 5
    assert [a["institution_id"] for a in box.list_alerts(open_only=False)] == ["KEEP"]
    # KEEP is still open: evaluating it again only reminds, it does not reopen.
    res = box.submit([alert(inst="KEEP")], now=T0 + timedelta(days=100))
    assert res.opened == [] and res.reminded == [alert(inst="KEEP").key]


def test_reminder_grace_for_a_check_that_runs_early(tmp_path):
    box = Outbox(tmp_path / "o", config(reminder_hours=24))
    box.submit([alert()], now=T0)
    assert box.submit([alert()], now=T0 + timedelta(hours=23, minutes=49)).reminded == []
    assert box.submit([alert()], now=T0 + timedelta(hours=23, minutes=55)).reminded == [alert().key]


# -- ordering, idempotency, crashes (issue 15) ---------------------------------------------------------

def test_resolved_never_overtakes_an_open_that_is_backing_off(tmp_path):
    """The receiver fails the "open" once; the condition clears before the retry is due.
    The old outbox sent "resolved" at once (the open was not due yet), then "open"."""
    hook = WebhookServer(fail_first=1).start()
    try:
        box = Outbox(tmp_path / "o", config(WebhookChannel(name="hook", url=hook.url), base_s=60))
        box.submit([alert()], now=T0)
        assert box.deliver_pending(now=T0).failed == 1
        box.submit([], now=T0 + timedelta(seconds=10))  # cleared: "resolved" queued, due at once
        assert box.deliver_pending(now=T0 + timedelta(seconds=10)).sent == 0  # it waits for its open
        r = box.deliver_pending(now=T0 + timedelta(seconds=61))
        assert (r.sent, r.pending) == (2, 0)  # both in one pass, in order
        assert [b["notification"] for b in hook.bodies] == ["open", "open", "resolved"]
    finally:
        hook.stop()


def test_every_channel_carries_the_idempotency_key(tmp_path, hook, cert):
    smtp = SmtpServer(*cert).start()
    log = tmp_path / "log.jsonl"
    try:
        mail = EmailChannel(name="mail", host="127.0.0.1", port=smtp.port, username="alerts", password="s3cret",
                            ca_file=str(cert[0]), sender="alerts@example.cn", to=("a@example.cn",))
        robot = WebhookServer(reply={"errcode": 0}).start()
        box = Outbox(tmp_path / "o", config(WebhookChannel(name="hook", url=hook.url), mail,
                                            WebhookChannel(name="robot", url=robot.url, format="wecom"),
                                            JsonlChannel(name="log", path=str(log))))
        box.submit([alert()], now=T0)
        assert box.deliver_pending(now=T0).sent == 4
        ids = {d["channel"]: d["id"] for d in box.list_deliveries()}
        key = {name: f"civicwatt-{box.outbox_id}-{i}" for name, i in ids.items()}
        assert len(set(key.values())) == 4
        got = hook.received[0]
        assert got["headers"]["Idempotency-Key"] == got["body"]["idempotency_key"] == key["hook"]
        assert got["headers"]["X-CivicWatt-Attempt"] == "1" and got["body"]["attempt"] == 1
        msg = smtp.messages[0]["message"]
        assert msg["Message-ID"] == f"<{key['mail']}@example.cn>"
        attached = json.loads(next(msg.iter_attachments()).get_content())
        assert attached["idempotency_key"] == key["mail"]
        assert key["robot"] in robot.bodies[0]["markdown"]["content"]
        assert json.loads(log.read_text(encoding="utf-8"))["idempotency_key"] == key["log"]
        robot.stop()
    finally:
        smtp.stop()


CRASHING_SENDER = """
import sys
from datetime import datetime
from alerts.outbox import Outbox
Outbox(sys.argv[1], sys.argv[2]).deliver_pending(now=datetime.fromisoformat(sys.argv[3]))
"""


def test_sigkill_between_send_and_mark_sent_replays_with_the_same_key(tmp_path):
    """A sender process is SIGKILLed after the receiver took the notification but before
    it was marked sent. The next pass sends it again (at least once) with the same
    idempotency key and attempt 2, and counts the replay: the receiver can drop it."""
    import os
    import signal
    import subprocess
    import sys

    from alerts.outbox import LEASE_S, SEND_TIMEOUTS

    hook = WebhookServer(hold=True).start()
    channels = tmp_path / "channels.yaml"
    channels.write_text(f"channels:\n  - {{name: hook, type: webhook, url: '{hook.url}', timeout_s: 5}}\n",
                        encoding="utf-8")
    try:
        Outbox(tmp_path / "o", channels).submit([alert()], now=T0)
        child = subprocess.Popen([sys.executable, "-c", CRASHING_SENDER, str(tmp_path / "o"), str(channels),
                                  T0.isoformat()])
        assert hook.arrived.wait(30), "the sender never reached the receiver"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        hook.hold = False
        hook.release.set()
        box = Outbox(tmp_path / "o", channels)
        assert box.deliver_pending(now=T0 + timedelta(seconds=30)).sent == 0  # still leased to the dead sender
        later = T0 + timedelta(seconds=LEASE_S + SEND_TIMEOUTS * 5 + 1)
        r = box.deliver_pending(now=later)
        assert (r.sent, r.replays, r.pending) == (1, 1, 0)
        first, second = hook.received
        assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
        assert first["body"]["idempotency_key"] == second["body"]["idempotency_key"] == box.idempotency_key(1)
        assert (first["body"]["attempt"], second["body"]["attempt"]) == (1, 2)
        assert box.deliver_pending(now=later + timedelta(hours=1)).sent == 0  # marked sent: never again
    finally:
        hook.release.set()
        hook.stop()


def test_slow_receiver_gets_one_sender_per_delivery(tmp_path, monkeypatch):
    """A receiver slower than the claim lease: the old outbox let a second sender claim
    the rows still waiting in the first sender's pass and send them again."""
    import threading

    import alerts.outbox

    monkeypatch.setattr(alerts.outbox, "LEASE_S", 0.2)
    hook = WebhookServer(delay_s=0.5).start()
    try:
        channels = config(WebhookChannel(name="hook", url=hook.url, timeout_s=5))
        a, b = Outbox(tmp_path / "o", channels), Outbox(tmp_path / "o", channels)
        a.submit([alert(inst=f"I{n}") for n in range(3)], now=T0)

        def later_sender():
            hook.arrived.wait(10)  # A is in its first send; its other claims are past their lease
            b.deliver_pending()  # the real clock, as in service: leases expire in real time

        other = threading.Thread(target=later_sender)
        other.start()
        a.deliver_pending()
        other.join()
        ids = [r["headers"]["X-CivicWatt-Delivery"] for r in hook.received]
        assert sorted(ids) == ["1", "2", "3"]  # each once
        assert [r["body"]["attempt"] for r in hook.received] == [1, 1, 1]
    finally:
        hook.stop()


def test_timed_out_send_is_resent_under_the_same_key(tmp_path):
    """A receiver that answers after the sender's timeout took the message: the resend
    carries the same idempotency key and attempt 2."""
    import time

    hook = WebhookServer(delay_s=1.0).start()
    try:
        box = Outbox(tmp_path / "o", config(WebhookChannel(name="hook", url=hook.url, timeout_s=0.3), base_s=1))
        box.submit([alert()], now=T0)
        assert box.deliver_pending(now=T0).failed == 1
        hook.delay_s = 0
        assert box.deliver_pending(now=T0 + timedelta(seconds=5)).sent == 1
        deadline = time.monotonic() + 10
        while len(hook.received) < 2 and time.monotonic() < deadline:  # the first request is still sleeping
            time.sleep(0.05)
        keys = {r["headers"]["Idempotency-Key"] for r in hook.received}
        assert len(hook.received) == 2 and len(keys) == 1
        assert sorted(r["body"]["attempt"] for r in hook.received) == [1, 2]
    finally:
        hook.stop()


def test_outbox_files_are_private(tmp_path):
    import stat

    box = Outbox(tmp_path / "new" / "outbox", config())
    box.submit([alert()], now=T0)
    assert stat.S_IMODE((tmp_path / "new" / "outbox").stat().st_mode) == 0o700
    for path in (tmp_path / "new" / "outbox").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
