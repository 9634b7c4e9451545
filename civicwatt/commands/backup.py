"""`civicwatt backup --out DIR`: a consistent copy of the embedded store, the outbox and the configuration files, while collectors write.

    OUT/data/       the embedded store's directory: every SQLite database (the store,
                    the alert outbox) copied with SQLite's online backup API, other files
                    (the dashboard's session key, alert logs) as they are; the health/
                    heartbeats are left out. For an InfluxDB store: the outbox directory's
                    databases and session key only — back InfluxDB up with
                    `influxd backup -portable` on its host.
    OUT/config/     the registry, quota, channels and users files that exist
    OUT/MANIFEST.json  when, from where (the store URL without secrets), and every file
                    with its size and, for a database, SQLite's integrity check

Each database is copied in one backup step (`Connection.backup(pages=-1)`): it reads
one snapshot (WAL mode: writers go on meanwhile), so the copy is consistent even while
`civicwatt collect` writes; a step-by-step copy would restart on every write. The copy
is switched to a single file (journal_mode=DELETE) and checked. Everything is written
to OUT.partial-* beside OUT and renamed at the end: an interrupted backup leaves no
half-written OUT. OUT must not exist, or be an empty directory.

Restore: stop the CivicWatt processes, move the store's directory away, copy
OUT/data back in its place (`cp -a OUT/data/. STORE_DIR/`), put the config files back,
start again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from alerts.outbox import default_outbox_dir
from civicwatt import __version__
from civicwatt.context import open_registry_store, redact_url, registry_from_args
from core.health import HEALTH_DIR
from core.yamlfile import ConfigError, Problem
from dashboard.login import SECRET_FILE

SQLITE_HEADER = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's own companions: the backup API reads through them


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def backup_sqlite(src: Path, dst: Path) -> str:
    """Copy the database `src` to `dst` in one online-backup step; returns SQLite's
    integrity check of the copy ("ok")."""
    with closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)) as s, \
            closing(sqlite3.connect(dst)) as d:
        s.backup(d, pages=-1)
        d.execute("PRAGMA journal_mode=DELETE")
        return str(d.execute("PRAGMA integrity_check").fetchone()[0])


def _files(data_dir: Path, embedded: bool) -> list[Path]:
    """What to copy from `data_dir`: all of an embedded store's directory but the
    heartbeats and SQLite's side files; of an InfluxDB set-up's outbox directory only its
    databases and the session key."""
    if not data_dir.is_dir():
        return []
    if not embedded:
        return sorted(p for p in data_dir.iterdir() if p.is_file() and (is_sqlite(p) or p.name == SECRET_FILE))
    out = []
    for p in sorted(data_dir.rglob("*")):
        rel = p.relative_to(data_dir)
        if not p.is_file() or rel.parts[0] == HEALTH_DIR or p.name.endswith(SIDE_FILES) or p.name.startswith("."):
            continue
        out.append(p)
    return out


def _target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError([Problem("<command line>", 0, "--out", f"{out} exists and is not an empty directory")])
    if not out.parent.is_dir():
        raise ConfigError([Problem("<command line>", 0, "--out", f"no such directory: {out.parent}")])


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _target(out)
    registry = registry_from_args(args)
    with open_registry_store(registry, args.store, create=False) as store:  # refuses a missing store
        url = store.url
    embedded = url.startswith("embedded:")
    data_dir = default_outbox_dir(url, Path(args.registry).parent)
    work = Path(tempfile.mkdtemp(prefix=f"{out.name}.partial-", dir=out.parent))
    try:
        files = []
        for src in _files(data_dir, embedded):
            dst = work / "data" / src.relative_to(data_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            entry = {"path": str(dst.relative_to(work))}
            if is_sqlite(src):
                entry["integrity"] = backup_sqlite(src, dst)
                if entry["integrity"] != "ok":
                    raise ConfigError([Problem(str(src), 0, "-", f"the copy fails SQLite's integrity check: "
                                                                 f"{entry['integrity']}")])
            else:
                shutil.copy2(src, dst)
            entry["bytes"] = dst.stat().st_size
            files.append(entry)
        for name in ("registry", "quotas", "channels", "users"):
            src = Path(getattr(args, name, None) or "")
            if src.is_file():
                dst = work / "config" / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                files.append({"path": str(dst.relative_to(work)), "bytes": dst.stat().st_size, "from": name})
        manifest = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "civicwatt": __version__,
                    "store": redact_url(url), "data_dir": str(data_dir.resolve()), "files": files}
        (work / "MANIFEST.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    dbs = sum(1 for f in files if "integrity" in f)
    total = sum(f["bytes"] for f in files)
    print(f"backup {out}: {len(files)} files, {total / 2**20:.1f} MiB; {dbs} SQLite database(s) copied online "
          "and checked (integrity ok)")
    if not embedded:
        print(f"the store {redact_url(url)} is not copied: back InfluxDB up on its host with "
              "`influxd backup -portable -db DATABASE DIR`")
    return 0
