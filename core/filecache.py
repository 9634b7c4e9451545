"""The one helper for "reload this file when it changed" (dashboard, API, users and tokens).

`FileCache.get(key, stamp, compute)` returns what `compute()` returned the last time
`key` was asked for with the same `stamp` (modification times, content hashes: any
hashable value that changes when the files do), else computes and keeps it. The users
file, the quota file and the savings-verification results use it. Time- and
size-bounded caches (year tables, sorted rankings) use `cachetools` instead
(docs/dashboard.md says why).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def mtime_stamp(path: Path) -> int | None:
    """The file's modification time (ns), None when it does not exist."""
    return path.stat().st_mtime_ns if path.exists() else None


class FileCache:
    """Values computed from files, each kept until its stamp changes (thread-safe;
    two threads that miss at once may both compute, the later result is kept)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Hashable, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Hashable, compute: Callable[[], T],
            keep_last_on: type[Exception] | tuple[type[Exception], ...] = ()) -> T:
        """The value of `key` for `stamp`. When `compute` raises one of `keep_last_on`
        and an earlier value exists, that value stays in use for this stamp (the
        problem is logged); without an earlier value the error propagates."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            value = compute()
        except keep_last_on as exc:
            if hit is None:
                raise
            log.warning("%s is invalid, keeping the last valid version:\n%s", key, exc)
            value = hit[1]
        with self._lock:
            self._entries[key] = (stamp, value)
        return value


class WatchedFile:
    """One file's parsed content (`load(path)`), re-read when its modification time changes."""

    def __init__(self, path: str | Path, load: Callable[[Path], Any]):
        self.path = Path(path)
        self.load = load
        self._cache = FileCache()

    def get(self) -> Any:
        return self._cache.get(self.path, mtime_stamp(self.path), lambda: self.load(self.path))

