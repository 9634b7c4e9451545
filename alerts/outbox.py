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
* `deliver_pending(now)` sends every due queued notification, oldest first per channel.
  A failure (channel down) keeps the notification queued and retries it with
  exponential back-off (`retry.base_s` x 2^(attempts-1), capped at `retry.max_s`); the
  remaining notifications of a failing channel wait for the next pass, so a channel
  always receives open -> reminder -> resolved in order. Each notification is sent
  until one attempt succeeds, then never again (the delivery row is marked sent in
  the same transaction that follows the send; the webhook header and e-mail header
  `X-CivicWatt-Delivery` carry the delivery id so a receiver can drop a replay after
  a crash between the two).
* `acknowledge(key, user)` records who took the alert on; an acknowledged alert gets no
  more reminders (it still gets its resolved message). `list_alerts(open_only=...)`
  serves the dashboard's alert page.

Several processes may share an outbox (the scheduler and `civicwatt quotas check
--notify`): writes are serialised by SQLite and a delivery is leased to one sender.
"""

from __future__ import annotations

import json
import sqlite3
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
from core.sqlite import connect, transaction

DB_NAME = "outbox.sqlite3"
BUSY_TIMEOUT_MS = 30_000
LEASE_S = 120.0  # a sender owns a claimed delivery this long (longer than any channel timeout)
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
"""

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
    errors: list[str] = field(default_factory=list)


class Outbox:
    """Persistent outbox in `directory`; `channels` is a ChannelsConfig, a list of
    channels, or the path of a channels YAML file (None: no channels, alerts are still
    tracked)."""

    def __init__(self, directory: str | Path, channels: ChannelsConfig | list[Channel] | str | Path | None = None,
                 reminder_hours: float | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
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

    def deliver_pending(self, now: datetime | None = None) -> DeliveryResult:
        """Send every due notification once; failed ones are retried later with back-off."""
        now = _now(now)
        t = now.timestamp()
        result = DeliveryResult()
        with closing(self._connect()) as con:
            with transaction(con):  # claim the due rows (a lease), so a second sender skips them
                rows = con.execute(
                    "SELECT * FROM delivery WHERE status = 'pending' AND next_at <= ? AND lease_until <= ?"
                    " ORDER BY channel, id", (t, t)).fetchall()
                ids = [r["id"] for r in rows if r["channel"] in self.channels]
                con.executemany("UPDATE delivery SET lease_until = ? WHERE id = ?", [(t + LEASE_S, i) for i in ids])
            failed_channels: set[str] = set()
            done: set[int] = set()
            for row in rows:
                name = row["channel"]
                ch = self.channels.get(name)
                if ch is None or name in failed_channels:
                    continue
                done.add(row["id"])
                payload = {**json.loads(row["payload"]), "delivery_id": row["id"]}
                try:
                    ch.send(payload)
                except DeliveryError as exc:
                    attempts = row["attempts"] + 1
                    con.execute("UPDATE delivery SET attempts = ?, next_at = ?, lease_until = 0, last_error = ?"
                                " WHERE id = ?", (attempts, t + self._backoff_s(attempts), str(exc), row["id"]))
                    failed_channels.add(name)
                    result.failed += 1
                    result.errors.append(str(exc))
                    continue
                con.execute("UPDATE delivery SET status = 'sent', attempts = attempts + 1, sent_at = ?,"
                            " lease_until = 0, last_error = NULL WHERE id = ?", (now.isoformat(), row["id"]))
                result.sent += 1
            # release the leases of rows skipped because their channel failed earlier in this pass
            con.executemany("UPDATE delivery SET lease_until = 0 WHERE id = ? AND status = 'pending'",
                            [(i,) for i in ids if i not in done])
            result.pending = con.execute("SELECT count(*) FROM delivery WHERE status = 'pending'").fetchone()[0]
        return result

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
