"""Process heartbeats: what each long-running process last did, as small JSON files read by `GET /healthz`.

Every long-running process (`civicwatt collect`, each shard of it, `civicwatt serve`,
`civicwatt demo`) keeps one file `NAME.json` in the health directory,
`health_dir(data_dir)` = DATA_DIR/health, where DATA_DIR is the directory the outbox and
the dashboard use (the embedded store's directory, else the registry's:
`alerts.outbox.default_outbox_dir`). The file is replaced atomically (a temporary file
in the same directory, then `os.replace`), so a reader sees the previous or the next
document, never half of one. NAME is `collect` (shard 1/1), `collect-IofN`, `serve`,
`demo`: a restarted process overwrites its own file, and a clean stop leaves it with
`"state": "stopped"`. Delete the file of a shard you retire after a crash (a clean stop
needs nothing).

The document (FORMAT 1; times are ISO 8601 UTC, counters count since the process started):

    {"format": 1, "name": "collect-1of2", "role": "collect", "pid": 4242, "host": "ems1",
     "started_at": "...", "updated_at": "...", "state": "running" | "stopped", "heartbeat_s": 30,
     "collect": {"shard": "1/2", "meters": 120, "gateways": 12, "poll_interval_s": 900,
                 "last_poll_at": "..." | null, "last_poll_ok_at": "..." | null,
                 "polls": 960, "ok": 955, "failed": 5, "samples_queued": 955, "estimated": 0,
                 "sent": 955, "store_errors": 0, "cycles": 96, "queue_backlog": 0, "slots_missed": 0,
                 "held_in_memory": 0, "dropped": 0},
     "alerts": {"enabled": true, "check_interval_s": 900, "last_run_at": "...", "last_run_ok": true,
                "error": null, "rules": "all" | "meter", "runs": 4, "failed_runs": 0,
                "holding": 3, "opened": 1, "reminded": 0, "resolved": 0, "sent": 1, "failed": 0,
                "delivered": 1, "delivery_failed": 0, "pending": 0},
     "jobs": {"JOB_ID": {"last_run_at": "...", "ok": true, "error": null, "runs": 1}}}

(`collect` is `collectors.service.CollectorService.health()`, `alerts`
`alerts.service.AlertService.health()`, `jobs` the runtime's jobs; docs/collectors.md
"Health" has the same.)

Sections are optional: a server has neither `collect` nor `alerts`; a collector shard
that does not run the checks has `"alerts": {"enabled": false, "reason": "..."}`.
`slots_missed` counts poll slots the scheduler skipped (the previous cycle still
running); `failed` counts unanswered polls, whose slots are filled and flagged estimated
later. `held_in_memory` counts poll results the disk queue refused (a full disk) and
memory holds; `dropped` those dropped beyond that bound (a collector that dropped any is
not ok: samples were lost).

`read_heartbeats(directory)` returns every document with what the reader concludes, at
the time of reading (so a process that hangs or dies is noticed without its help):

* `stalled` — polling stalled: a process with meters whose last successful poll (or
  its start, before the first) is more than `STALL_INTERVALS` (3) poll intervals old;
* `stale` — a running process that has not rewritten its file for 3 poll intervals
  (3 heartbeats for a process that does not poll), or whose pid is gone (same host);
* `ok` — neither, and no poll result dropped (`collect.dropped`); `problems` lists the
  reasons in words; `age_s` is the file's age.

`healthy(heartbeats)` is True when every one is ok: the `/healthz` rule (with the store
check, which is the route's own).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = 1
HEALTH_DIR = "health"
HEARTBEAT_S = 30.0  # how often a process rewrites its file (at most; less for short poll intervals)
STALL_INTERVALS = 3  # polling is stalled after this many poll intervals without a successful poll


def health_dir(data_dir: str | Path) -> Path:
    """The health directory of a data directory (see the module docstring)."""
    return Path(data_dir) / HEALTH_DIR


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (None stays None)."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def write_heartbeat(directory: str | Path, name: str, doc: dict[str, Any]) -> Path:
    """Write `doc` as DIRECTORY/NAME.json atomically (temporary file + rename); returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _pid_gone(doc: dict[str, Any]) -> bool:
    """The process of `doc` ran on this host and is no longer there."""
    pid = doc.get("pid")
    if doc.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def assess(doc: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """`doc` with `age_s`, `stalled`, `stale`, `ok` and `problems` added (module docstring)."""
    now = time.time() if now is None else now
    updated = _epoch(doc.get("updated_at"))
    age = None if updated is None else max(0.0, now - updated)
    problems: list[str] = []
    running = doc.get("state") != "stopped"
    collect = doc.get("collect") or {}
    interval = float(collect.get("poll_interval_s") or 0)
    stalled = False
    if running and collect.get("meters") and interval > 0:
        since = _epoch(collect.get("last_poll_ok_at")) or _epoch(doc.get("started_at"))
        if since is not None and now - since > STALL_INTERVALS * interval:
            stalled = True
            what = "last successful poll" if collect.get("last_poll_ok_at") else "start, and no successful poll yet"
            problems.append(f"polling stalled: {now - since:.0f} s since the {what} "
                            f"(more than {STALL_INTERVALS} poll intervals of {interval:.0f} s)")
    stale = False
    if running:
        limit = STALL_INTERVALS * max(interval, float(doc.get("heartbeat_s") or HEARTBEAT_S))
        if age is None:
            stale = True
            problems.append("no updated_at in the heartbeat")
        elif age > limit:
            stale = True
            problems.append(f"heartbeat not rewritten for {age:.0f} s (more than {limit:.0f} s): process hung or gone")
        elif _pid_gone(doc):
            stale = True
            problems.append(f"process {doc.get('pid')} is not running (killed?)")
    lost = int(collect.get("dropped") or 0)
    if lost:
        problems.append(f"{lost} poll results dropped: the disk queue refused writes (disk full?) for longer than "
                        "the memory holds")
    if collect.get("held_in_memory"):
        problems.append(f"the disk queue refuses writes: {collect['held_in_memory']} poll results held in memory")
    alerts = doc.get("alerts") or {}
    if alerts.get("enabled") and alerts.get("last_run_ok") is False:
        problems.append(f"last alert run failed: {alerts.get('error')}")  # reported, not a stall
    return {**doc, "age_s": None if age is None else round(age, 1), "stalled": stalled, "stale": stale,
            "ok": not (stalled or stale or lost), "problems": problems}


def read_heartbeats(directory: str | Path, now: float | None = None) -> list[dict[str, Any]]:
    """Every heartbeat in `directory` (none when it does not exist), by name, each
    assessed at `now` (default: the current time; see `assess`). A file that cannot be
    read or parsed comes back as {"name", "ok": False, "problems": [...]}."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            out.append({"name": path.stem, "ok": False, "stalled": False, "stale": True,
                        "problems": [f"{path}: unreadable heartbeat ({exc})"]})
            continue
        out.append(assess({**doc, "name": path.stem}, now))  # the file names the process
    return out


def healthy(heartbeats: Iterable[dict[str, Any]]) -> bool:
    """True when no heartbeat is stalled or stale."""
    return all(h.get("ok") for h in heartbeats)


class Heartbeat:
    """One process's heartbeat file, rewritten every `interval_s` by its own thread.

        hb = Heartbeat(health_dir(data_dir), "collect-1of2", role="collect", interval_s=30)
        hb.provide("collect", service.health)   # a section pulled at every beat
        hb.set("alerts", {...}); hb.beat()      # a section pushed by its producer
        hb.start() ... hb.stop()                # stop() writes "state": "stopped"

    A provider that raises leaves its section as it was (and the error in `errors`)."""

    def __init__(self, directory: str | Path, name: str, role: str, interval_s: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.name = name
        self.role = role
        self.interval_s = max(0.2, float(interval_s))
        self.clock = clock
        self.started_at = clock()
        self.sections: dict[str, Any] = {}
        self._providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = self.directory / f"{name}.json"

    def provide(self, section: str, fn: Callable[[], dict[str, Any]]) -> None:
        self._providers[section] = fn

    def set(self, section: str, values: dict[str, Any]) -> None:
        with self._lock:
            self.sections[section] = dict(values)

    def document(self, state: str = "running") -> dict[str, Any]:
        for section, fn in list(self._providers.items()):
            try:
                self.set(section, fn())
            except Exception as exc:  # a heartbeat never takes the process down
                self.set("errors", {**self.sections.get("errors", {}), section: str(exc)})
        with self._lock:
            return {"format": FORMAT, "name": self.name, "role": self.role, "pid": os.getpid(),
                    "host": socket.gethostname(), "started_at": iso(self.started_at), "updated_at": iso(self.clock()),
                    "state": state, "heartbeat_s": self.interval_s, **self.sections}

    def beat(self, state: str = "running") -> Path | None:
        """Rewrite the file now (None when the directory cannot be written: logged by the caller's logger)."""
        try:
            return write_heartbeat(self.directory, self.name, self.document(state))
        except OSError:
            return None

    def start(self) -> Heartbeat:
        if self._thread is None:
            self.beat()
            self._stopping.clear()
            self._thread = threading.Thread(target=self._main, name=f"civicwatt-heartbeat-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _main(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        """Stop the thread and leave the file saying the process stopped cleanly."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.beat("stopped")
