"""The persistent alert outbox: de-duplication, reminders, resolutions and retried delivery.

`Outbox(directory, channels)` keeps one SQLite database (`outbox.sqlite3`, WAL) in a
directory. Its life cycle:

* `submit(alerts, now)` takes the *complete* result of one evaluation (or, with
  `rules=`, the complete result for those rules). For each alert key:
  - new, or seen before but resolved: the alert (re)opens and an **open** notification
    is queued for every channel that accepts its severity;
  - already open: nothing is queued (no duplicates), unless it has been open and
    unacknowledged for `reminder_hours` since its last notification: a **reminder**;
  - open but absent from this evaluation: the condition cleared, the alert is resolved
    and a **resolved** notification is queued. When another alert of the same group
    (scope/indicator/period) of higher severity is present, the resolution says it was
    superseded (a projected breach that became an actual breach); "period ended" when
    the alert's year or month is over (a 2025 breach stops being evaluated in 2026: the
    final figure is in the ledger); otherwise "cleared".
* `deliver_pending(now)` sends every due queued notification, per alert key and channel
  strictly in the order queued: a notification is not sent while an earlier one of the
  same key is still queued for that channel (a "resolved" never overtakes its "open"
  when the open is backing off). A failure (channel down) keeps the notification queued
  and retries it with exponential back-off (`retry.base_s` x 2^(attempts-1), capped at
  `retry.max_s`); the remaining notifications of a failing channel wait for the next
  pass. Delivery is **at least once**: the row is marked sent after the receiver
  accepted it, so a crash (or a timeout of a slow receiver) between the two sends it
  again. Every attempt of one notification carries the same idempotency key
  (`idempotency_key` in the JSON, the `Idempotency-Key` webhook header, the e-mail
  Message-ID) and its `attempt` number, so a receiver can drop the replay; a send found
  interrupted is counted in `DeliveryResult.replays` and logged.
* `acknowledge(key, user)` records who took the alert on; an acknowledged alert gets no
  more reminders (it still gets its resolved message). `list_alerts(open_only=...)`
  serves the dashboard's alert page.

Several processes may share an outbox (the scheduler and `civicwatt quotas check
--notify`): writes are serialised by SQLite and a delivery is leased to one sender; the
lease is renewed just before each send and outlasts the channel's timeouts, so a slow
receiver never has one notification sent by two senders at once. The outbox directory
is created 0700 and its database 0600 (it holds recipients and alert contents).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.channels import (
    Channel,
    ChannelsConfig,
    DeliveryError,
    load_channels,
)
from alerts.record import SEVERITY_RANK, Alert
from core.private import private_dir, private_file
from core.sqlite import connect, transaction

log = logging.getLogger(__name__)

DB_NAME = "outbox.sqlite3"
BUSY_TIMEOUT_MS = 30_000
LEASE_S = 120.0  # a sender owns a claimed delivery this long, plus SEND_TIMEOUTS x the channel's timeout
SEND_TIMEOUTS = 6  # network steps of one send that may each take the channel's timeout (SMTP: connect .. DATA)
MAX_ROUNDS = 100  # claim rounds of one pass (each round sends the next notification of each key)
REMINDER_GRACE_S = 600.0  # a reminder is due up to 10 min early (scheduled checks drift)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (
    key TEXT PRIMARY KEY, rule TEXT NOT NULL, severity TEXT NOT NULL, scope TEXT NOT NULL,
    institution_id TEXT, grp TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
    episode INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    last_notified REAL NOT NULL, reminders INTEGER NOT NULL DEFAULT 0,
    resolved_at TEXT, resolution TEXT, ack_by TEXT, ack_at TEXT);
CREATE INDEX IF NOT EXISTS alert_status ON alert (status);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, episode INTEGER NOT NULL,
    kind TEXT NOT NULL, seq INTEGER NOT NULL, channel TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0, created_at TEXT NOT NULL, sent_at TEXT, last_error TEXT,
    UNIQUE (key, episode, kind, seq, channel));
CREATE INDEX IF NOT EXISTS delivery_due ON delivery (status, next_at);
CREATE INDEX IF NOT EXISTS delivery_order ON delivery (key, channel, status, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added after the first release (an older outbox gets them on open).
MIGRATIONS = {"started": "INTEGER NOT NULL DEFAULT 0",  # sends begun; more than `attempts`: one was interrupted
              "lease_owner": "TEXT"}

RESOLUTION_ZH = {"cleared": "条件已消除", "superseded": "已升级为更严重的告警",
                 "period ended": "考核期已结束（最终结果见年度台账）"}


def _period_over(period: str, now: datetime) -> bool:
    """A year ('2025') or month ('2025-03') period that ended before `now`."""
    if len(period) == 4 and period.isdigit():
        return int(period) < now.year
    if len(period) == 7 and period[:4].isdigit() and period[4] == "-" and period[5:].isdigit():
        return (int(period[:4]), int(period[5:])) < (now.year, now.month)
    return False


def default_outbox_dir(store_url: str, fallback: str | Path = ".") -> Path:
    """Where the outbox lives by default: the embedded store's directory (next to its
    database), else `fallback` (e.g. the registry's directory)."""
    if store_url.startswith("embedded:"):
        return Path(store_url.removeprefix("embedded:"))
    return Path(fallback)


def _now(now: datetime | None) -> datetime:
    out = now or datetime.now(UTC)
    if out.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return out


@dataclass
class SubmitResult:
    opened: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0
    pending: int = 0
    replays: int = 0  # sends of a notification whose earlier send was interrupted (it may arrive twice)
    errors: list[str] = field(default_factory=list)


class Outbox:
    """Persistent outbox in `directory`; `channels` is a ChannelsConfig, a list of
    channels, or the path of a channels YAML file (None: no channels, alerts are still
    tracked)."""

    def __init__(self, directory: str | Path, channels: ChannelsConfig | list[Channel] | str | Path | None = None,
                 reminder_hours: float | None = None):
        self.directory = private_dir(directory)
        self.path = private_file(self.directory / DB_NAME)
        if channels is None:
            cfg = ChannelsConfig()
        elif isinstance(channels, ChannelsConfig):
            cfg = channels
        elif isinstance(channels, (str, Path)):
            cfg = load_channels(channels)
        else:
            cfg = ChannelsConfig(channels=list(channels))
        self.config = cfg
        self.channels: dict[str, Channel] = {c.name: c for c in cfg.channels}
        self.reminder = timedelta(hours=cfg.reminder_hours if reminder_hours is None else reminder_hours)
        with closing(self._connect()) as con:
            con.executescript(SCHEMA)
            have = {r["name"] for r in con.execute("PRAGMA table_info(delivery)")}
            for column, decl in MIGRATIONS.items():
                if column not in have:
                    con.execute(f"ALTER TABLE delivery ADD COLUMN {column} {decl}")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('outbox_id', ?)", (uuid.uuid4().hex,))
            self.outbox_id = con.execute("SELECT value FROM meta WHERE name = 'outbox_id'").fetchone()[0]

    def _connect(self) -> sqlite3.Connection:
        con = connect(str(self.path), busy_timeout_ms=BUSY_TIMEOUT_MS)
        con.execute("PRAGMA synchronous=FULL")  # a recorded notification survives a power cut
        con.row_factory = sqlite3.Row
        return con

    # -- queueing ---------------------------------------------------------------
    def _enqueue(self, con: sqlite3.Connection, payload: dict[str, Any], episode: int, kind: str, seq: int,
                 now: datetime) -> None:
        for ch in self.channels.values():
            if not ch.accepts(payload):
                continue
            con.execute(
                "INSERT OR IGNORE INTO delivery (key, episode, kind, seq, channel, payload, status, next_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (payload["key"], episode, kind, seq, ch.name, json.dumps(payload, ensure_ascii=False, sort_keys=True),
                 now.timestamp(), now.isoformat()))

    def enqueue(self, payloads: Iterable[dict[str, Any]], kind: str = "message", now: datetime | None = None) -> int:
        """Queue messages that are not alerts (e.g. the upward push of approved months) for
        every channel, delivered by `deliver_pending` like notifications: retried with
        back-off until the receiver accepts, in order per `key`, one idempotency key per
        delivery. Each payload needs `key` and `revision` (an int: a message with a key,
        kind and revision already queued or sent is not queued again). Returns how many
        deliveries were queued."""
        now = _now(now)
        with closing(self._connect()) as con, transaction(con):
            before = con.total_changes
            for payload in payloads:
                self._enqueue(con, payload, 1, kind, int(payload["revision"]), now)
            return con.total_changes - before

    def submit(self, alerts: Iterable[Alert], now: datetime | None = None, rules: Iterable[str] | None = None,
               resolve_missing: bool = True) -> SubmitResult:
        """Record one evaluation's alerts; queue open, reminder and resolved notifications.

        `rules`: the rules this evaluation covered (None: all); open alerts of other
        rules are left alone. `resolve_missing=False` only adds (for partial runs)."""
        now = _now(now)
        stamp = now.isoformat()
        alerts = {a.key: a for a in alerts}
        covered = None if rules is None else set(rules)
        result = SubmitResult()
        with closing(self._connect()) as con, transaction(con):
            stored = {r["key"]: r for r in con.execute("SELECT * FROM alert")}
            for key in sorted(alerts):
                alert = alerts[key]
                row = stored.get(key)
                if row is None or row["status"] == "resolved":
                    episode = 1 if row is None else row["episode"] + 1
                    if not alert.first_seen:
                        alert = alert.with_first_seen(stamp)
                    payload = {**alert.to_dict(), "notification": "open", "status": "open", "episode": episode}
                    con.execute(
                        "INSERT OR REPLACE INTO alert (key, rule, severity, scope, institution_id, grp, payload, status,"
                        " episode, first_seen, last_seen, last_notified, reminders, resolved_at, resolution, ack_by,"
                        " ack_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, 0, NULL, NULL, NULL, NULL)",
                        (key, alert.rule, alert.severity, alert.scope, alert.institution_id, alert.group,
                         json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True), episode,
                         alert.first_seen, stamp, now.timestamp()))
                    self._enqueue(con, payload, episode, "open", 0, now)
                    result.opened.append(key)
                    continue
                alert = alert.with_first_seen(row["first_seen"])
                con.execute("UPDATE alert SET payload = ?, severity = ?, last_seen = ? WHERE key = ?",
                            (json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True), alert.severity,
                             stamp, key))
                interval = self.reminder.total_seconds()
                grace = min(REMINDER_GRACE_S, 0.05 * interval)  # a daily check that runs a little early
                due = now.timestamp() - row["last_notified"] >= interval - grace
                if row["ack_by"] is None and self.reminder.total_seconds() > 0 and due:
                    n = row["reminders"] + 1
                    payload = {**alert.to_dict(), "notification": "reminder", "status": "open", "reminder": n,
                               "episode": row["episode"]}
                    self._enqueue(con, payload, row["episode"], "reminder", n, now)
                    con.execute("UPDATE alert SET reminders = ?, last_notified = ? WHERE key = ?",
                                (n, now.timestamp(), key))
                    result.reminded.append(key)
            if resolve_missing:
                groups = {a.group: a for a in alerts.values()}
                for key in sorted(stored):
                    row = stored[key]
                    if row["status"] != "open" or key in alerts or (covered is not None and row["rule"] not in covered):
                        continue
                    successor = groups.get(row["grp"])
                    if successor is not None and SEVERITY_RANK[successor.severity] <= SEVERITY_RANK[row["severity"]]:
                        successor = None  # a milder alert of the group follows: the condition improved
                    last = json.loads(row["payload"])
                    if successor is not None:
                        resolution = "superseded"
                    elif _period_over(str(last.get("period", "")), now):
                        resolution = "period ended"
                    else:
                        resolution = "cleared"
                    payload = {**last, "notification": "resolved", "status": "resolved",
                               "episode": row["episode"],
                               "resolved_at": stamp, "resolution": resolution if successor is None
                               else f"superseded by {successor.rule}",
                               "resolution_zh": RESOLUTION_ZH[resolution]}
                    if successor is not None:
                        payload["superseded_by"] = successor.key
                    con.execute("UPDATE alert SET status = 'resolved', resolved_at = ?, resolution = ? WHERE key = ?",
                                (stamp, payload["resolution"], key))
                    self._enqueue(con, payload, row["episode"], "resolved", 0, now)
                    result.resolved.append(key)
        return result

    # -- delivery ---------------------------------------------------------------
    def _backoff_s(self, attempts: int) -> float:
        return min(self.config.retry_base_s * 2 ** max(attempts - 1, 0), self.config.retry_max_s)

    def idempotency_key(self, delivery_id: int) -> str:
        """The key every attempt of one delivery carries: unique across outboxes (the
        outbox's random id) and stable across retries and restarts."""
        return f"civicwatt-{self.outbox_id}-{delivery_id}"

    def _claim(self, con: sqlite3.Connection, t: float, owner: str, skip: set[str]) -> list[sqlite3.Row]:
        """Lease the due notifications that are next in line for their key and channel."""
        with transaction(con):
            rows = con.execute(
                "SELECT * FROM delivery d WHERE status = 'pending' AND next_at <= ? AND lease_until <= ?"
                " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.key = d.key AND e.channel = d.channel"
                " AND e.status = 'pending' AND e.id < d.id) ORDER BY channel, id", (t, t)).fetchall()
            rows = [r for r in rows if r["channel"] in self.channels and r["channel"] not in skip]
            con.executemany("UPDATE delivery SET lease_until = ?, lease_owner = ? WHERE id = ?",
                            [(t + LEASE_S, owner, r["id"]) for r in rows])
        return rows

    def deliver_pending(self, now: datetime | None = None) -> DeliveryResult:
        """Send every due notification, each key's in order; failed ones are retried later
        with back-off. `now` is the pass's time (leases follow it, advanced by the real
        time the pass takes)."""
        now = _now(now)
        started = time.monotonic()

        def clock() -> float:
            return now.timestamp() + (time.monotonic() - started)

        owner = uuid.uuid4().hex
        result = DeliveryResult()
        failed_channels: set[str] = set()
        with closing(self._connect()) as con:
            for _ in range(MAX_ROUNDS):
                rows = self._claim(con, clock(), owner, failed_channels)
                sent_before = result.sent
                for row in rows:
                    if row["channel"] in failed_channels:
                        con.execute("UPDATE delivery SET lease_until = 0 WHERE id = ? AND lease_owner = ?",
                                    (row["id"], owner))
                        continue
                    self._send_one(con, row, owner, clock, result, failed_channels)
                if result.sent == sent_before:
                    break
            result.pending = con.execute("SELECT count(*) FROM delivery WHERE status = 'pending'").fetchone()[0]
        return result

    def _send_one(self, con: sqlite3.Connection, row: sqlite3.Row, owner: str, clock: Any,
                  result: DeliveryResult, failed_channels: set[str]) -> None:
        ch = self.channels[row["channel"]]
        lease_s = LEASE_S + SEND_TIMEOUTS * float(getattr(ch, "timeout_s", 0.0) or 0.0)
        # Renew the lease and count the send as begun, committed before the send: a second
        # sender cannot take the row while it is in flight, and after a crash the next
        # sender sees that this attempt may have reached the receiver.
        took = con.execute("UPDATE delivery SET lease_until = ?, started = started + 1 WHERE id = ?"
                           " AND lease_owner = ? AND status = 'pending'", (clock() + lease_s, row["id"], owner))
        if took.rowcount == 0:
            return  # our claim expired and another sender has it
        key = self.idempotency_key(row["id"])
        if row["started"] > row["attempts"]:
            result.replays += 1
            log.warning("delivery %s (%s %s) to %s: an earlier send was interrupted; sending again with "
                        "idempotency key %s", row["id"], row["key"], row["kind"], row["channel"], key)
        payload = {**json.loads(row["payload"]), "delivery_id": row["id"], "idempotency_key": key,
                   "attempt": row["started"] + 1}
        try:
            ch.send(payload)
        except DeliveryError as exc:
            attempts = row["attempts"] + 1
            con.execute("UPDATE delivery SET attempts = ?, next_at = ?, lease_until = 0, last_error = ?"
                        " WHERE id = ?", (attempts, clock() + self._backoff_s(attempts), str(exc), row["id"]))
            failed_channels.add(row["channel"])
            result.failed += 1
            result.errors.append(str(exc))
            return
        con.execute("UPDATE delivery SET status = 'sent', attempts = attempts + 1, sent_at = ?,"
                    " lease_until = 0, last_error = NULL WHERE id = ?",
                    (datetime.fromtimestamp(clock(), UTC).isoformat(), row["id"]))
        result.sent += 1

    # -- queries for the CLI and the dashboard -----------------------------------
    def list_alerts(self, open_only: bool = True) -> list[dict[str, Any]]:
        """Alerts (newest first): the alert object plus status, episode, last_seen,
        reminders, resolved_at, resolution, acknowledged_by, acknowledged_at."""
        sql = "SELECT * FROM alert" + (" WHERE status = 'open'" if open_only else "") + \
              " ORDER BY first_seen DESC, key"
        with closing(self._connect()) as con:
            rows = con.execute(sql).fetchall()
        out = []
        for r in rows:
            d = json.loads(r["payload"])
            d.update(status=r["status"], episode=r["episode"], first_seen=r["first_seen"], last_seen=r["last_seen"],
                     reminders=r["reminders"], resolved_at=r["resolved_at"], resolution=r["resolution"],
                     acknowledged_by=r["ack_by"], acknowledged_at=r["ack_at"])
            out.append(d)
        return out

    def acknowledge(self, key: str, user: str, now: datetime | None = None) -> bool:
        """Mark an open alert as taken on by `user` (no more reminders). False if no
        open alert has this key."""
        now = _now(now)
        with closing(self._connect()) as con:
            cur = con.execute("UPDATE alert SET ack_by = ?, ack_at = ? WHERE key = ? AND status = 'open'",
                              (user, now.isoformat(), key))
            return cur.rowcount > 0

    def prune(self, keep_days: float = 400.0, now: datetime | None = None) -> int:
        """Delete sent notifications and resolved alerts older than `keep_days`
        (default a little over a year, for the annual review); returns rows deleted.
        Pending notifications and open alerts are never deleted."""
        cutoff = (_now(now) - timedelta(days=keep_days)).isoformat()
        with closing(self._connect()) as con:
            n = con.execute("DELETE FROM delivery WHERE status = 'sent' AND sent_at < ?", (cutoff,)).rowcount
            n += con.execute("DELETE FROM alert WHERE status = 'resolved' AND resolved_at < ? AND key NOT IN "
                             "(SELECT key FROM delivery WHERE status = 'pending')", (cutoff,)).rowcount
        return n

    def list_deliveries(self, key: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Queued and sent notifications: id, key, episode, kind, seq, channel, status,
        attempts, created_at, sent_at, last_error, payload (dict)."""
        where, params = [], []
        if key is not None:
            where.append("key = ?")
            params.append(key)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM delivery" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with closing(self._connect()) as con:
            rows = con.execute(sql, params).fetchall()
        hidden = ("payload", "lease_until", "next_at")
        return [{**{k: r[k] for k in r.keys() if k not in hidden},  # noqa: SIM118 - a Row iterates values
                 "next_at": datetime.fromtimestamp(r["next_at"], UTC).isoformat(),
                 "payload": json.loads(r["payload"])} for r in rows]
