"""The one helper for "reload this file when it changed" (dashboard, API, users and tokens, registry snapshots).

`FileCache.get(key, stamp, compute)` returns what `compute()` returned the last time
`key` was asked for with the same `stamp` (modification times, content hashes: any
hashable value that changes when the files do), else computes and keeps it. The users
file, the quota file and the savings-verification results use it. Time- and
size-bounded caches (year tables, sorted rankings) use `cachetools` instead
(docs/dashboard.md says why).

`FileCache(directory=...)` also keeps each value on disk (a pickle in a private cache
directory, `cache_dir()`), so the next process finds it: the registry's validated
snapshot (`core.registry.load_registry`) is kept so, stamped with `content_stamp` (path,
size, mtime_ns and the sha256 of the bytes that were parsed). An entry written by other
code (`version`), one that cannot be read, or one for another stamp is ignored and
rewritten; a value whose `compute` raised is never written.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import stat
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Where on-disk entries go: this directory, or `off` for none (default: the user's cache directory).
CACHE_DIR_ENV = "CIVICWATT_CACHE_DIR"


def mtime_stamp(path: Path) -> int | None:
    """The file's modification time (ns), None when it does not exist."""
    return path.stat().st_mtime_ns if path.exists() else None


def content_stamp(path: Path, data: bytes, st: os.stat_result) -> tuple[str, int, int, str]:
    """(resolved path, size, mtime_ns, sha256 of `data`) of a file whose bytes `data` were
    read after `st = path.stat()`: the hash makes an edit that keeps size and mtime show."""
    return str(path.resolve()), st.st_size, st.st_mtime_ns, hashlib.sha256(data).hexdigest()


def cache_dir(name: str) -> Path | None:
    """`name` under `$CIVICWATT_CACHE_DIR`, else `$XDG_CACHE_HOME/civicwatt`, else
    `~/.cache/civicwatt` (None when `$CIVICWATT_CACHE_DIR` is `off`)."""
    base = os.environ.get(CACHE_DIR_ENV)
    if base == "off":
        return None
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "civicwatt")
    return Path(base) / name


def _private(path: Path) -> bool:
    """Ours and writable by nobody else: entries are pickles, so a directory or file that
    another user could write is never read (nor written to)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class FileCache:
    """Values computed from files, each kept until its stamp changes (thread-safe;
    two threads that miss at once may both compute, the later result is kept).

    With `directory`, each value is also kept on disk (one pickle per key, written
    atomically, the directory created private to the user) and read back by a later
    process for the same `version` and stamp; the stamp and key must then pickle too.
    Disk problems (read-only, full, corrupt or foreign entries) never fail `get`: the
    value is computed and, where possible, written again."""

    def __init__(self, directory: Path | None = None, version: str = "") -> None:
        self._entries: dict[Hashable, tuple[Hashable, Any]] = {}
        self._lock = threading.Lock()
        self.directory, self.version = directory, version

    def get(self, key: Hashable, stamp: Hashable, compute: Callable[[], T],
            keep_last_on: type[Exception] | tuple[type[Exception], ...] = ()) -> T:
        """The value of `key` for `stamp`. When `compute` raises one of `keep_last_on`
        and an earlier value exists, that value stays in use for this stamp (the
        problem is logged); without an earlier value the error propagates."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        found = self._read(key, stamp)
        if found is not None:
            with self._lock:
                self._entries[key] = (stamp, found[0])
            return found[0]
        try:
            value = compute()
        except keep_last_on as exc:
            if hit is None:
                raise
            log.warning("%s is invalid, keeping the last valid version:\n%s", key, exc)
            value = hit[1]
        else:
            self._write(key, stamp, value)
        with self._lock:
            self._entries[key] = (stamp, value)
        return value

    def entry_path(self, key: Hashable) -> Path | None:
        """The file that holds `key` on disk (None without a directory)."""
        if self.directory is None:
            return None
        return self.directory / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:32]}.pickle"

    def _read(self, key: Hashable, stamp: Hashable) -> tuple[Any] | None:
        """(value,) from disk when the entry there is this version's, for `key` and `stamp`."""
        path = self.entry_path(key)
        if path is None or not path.is_file() or not (_private(path.parent) and _private(path)):
            return None
        enabled = gc.isenabled()
        gc.disable()  # unpickling ~250,000 small objects: the collector would triple the time
        try:
            with path.open("rb") as f:
                if pickle.load(f) != (self.version, key, stamp):  # the header: a stale entry is not loaded
                    return None
                return (pickle.load(f),)
        except Exception as exc:  # corrupt, truncated, written by other code: ignored, rewritten
            log.info("ignoring the cache entry %s: %s", path, exc)
            return None
        finally:
            if enabled:
                gc.enable()

    def _write(self, key: Hashable, stamp: Hashable, value: Any) -> None:
        path = self.entry_path(key)
        if path is None:
            return
        tmp = None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(path.parent):
                log.warning("not writing the cache entry %s: the directory is not private to this user", path)
                return
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                pickle.dump((self.version, key, stamp), f, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # readers see the old entry or the whole new one
            tmp = None
        except Exception as exc:  # a read-only or full disk, an unpicklable value: no entry, no failure
            log.info("cannot write the cache entry %s: %s", path, exc)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


class WatchedFile:
    """One file's parsed content (`load(path)`), re-read when its modification time changes."""

    def __init__(self, path: str | Path, load: Callable[[Path], Any]):
        self.path = Path(path)
        self.load = load
        self._cache = FileCache()

    def get(self) -> Any:
        return self._cache.get(self.path, mtime_stamp(self.path), lambda: self.load(self.path))
