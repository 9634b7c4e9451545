"""Thin adapters to the quotas, alerts, ledger, report and savings-verification code.

Each adapter imports its package when first used and keeps what is costly (the quota
file, the outbox, verification results) until its files change (`core.filecache`).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from core.access import Principal, project_visible
from core.filecache import FileCache, mtime_stamp
from core.registry import Registry
from core.yamlfile import ConfigError


class Quotas:
    """quotas.yaml, re-read when it changes (None without a file)."""

    def __init__(self, path: str | Path | None, registry: Registry):
        self.path = Path(path) if path else None
        self.registry = registry
        self._cache = FileCache()

    def config(self) -> Any | None:
        """The `quotas.config.QuotaConfig`, or None. A file edited into an invalid
        state keeps the last valid configuration in use (the problems are logged);
        an invalid file at the first load raises ConfigError."""
        if self.path is None or not self.path.exists():
            return None
        return self._cache.get(self.path, mtime_stamp(self.path), self._load, keep_last_on=ConfigError)

    def _load(self) -> Any:
        from quotas.config import load_quotas

        return load_quotas(self.path, self.registry)


_OUTBOXES: dict[Path, Any] = {}


def outbox(data_dir: Path | None) -> Any | None:
    """The alert outbox kept in `data_dir` (alerts.outbox.Outbox), or None."""
    if data_dir is None:
        return None
    from alerts.outbox import Outbox

    key = Path(data_dir).resolve()
    if key not in _OUTBOXES:
        _OUTBOXES[key] = Outbox(key)
    return _OUTBOXES[key]


_FILINGS: dict[Path, Any] = {}


def filing(data_dir: Path | None, registry: Registry, store: Any, today: Any) -> Any | None:
    """The monthly submission service over the submission book kept in `data_dir`
    (`quotas.filing.Filing`), or None without a data directory."""
    if data_dir is None:
        return None
    from quotas.filing import Filing

    key = Path(data_dir).resolve()
    if key not in _FILINGS or _FILINGS[key].store is not store:
        _FILINGS[key] = Filing.open(registry, store, key, today=today)
    _FILINGS[key].use_registry(registry)
    return _FILINGS[key]


def ledger_bytes(registry: Registry, visible: set[str] | None, store: Any, year: int, fmt: str,
                 quotas: Any | None) -> bytes:
    """The annual carbon ledger (reports.ledger) as xlsx or csv bytes, limited to the
    `visible` institutions (None: all). Their rows keep their rank among all peers;
    the totals sheet is recomputed over the visible institutions only."""
    from reports.ledger import ledger_csv_bytes, scoped_ledger, write_ledger

    tables = scoped_ledger(store, registry, year, visible, quotas=quotas)
    if fmt == "csv":
        return ledger_csv_bytes(tables)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ledger.xlsx"
        write_ledger(tables, out)
        return out.read_bytes()


def report_bytes(registry: Registry, store: Any, month: str, quotas: Any | None) -> bytes:
    """The monthly statistical report (reports.monthly) of `registry`'s institutions as
    xlsx bytes. Pass a registry scoped to what the user may see: region and category
    sheets then sum only those institutions."""
    from reports.monthly import monthly_report, write_report

    tables = monthly_report(store, registry, month, basis=quotas.basis if quotas is not None else "equivalent")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.xlsx"
        write_report(tables, out)
        return out.read_bytes()


def frames_xlsx(sheets: list[tuple[str, Any, list[tuple[str, str]], list[str]]]) -> bytes:
    """What a page shows as an xlsx workbook (the reports' writer, `reports.xlsx`): one
    sheet per (title, frame, [(column, label with unit)], note lines); numbers get
    thousands separators, the first column is frozen."""
    import io

    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from reports.xlsx import QTY, Col, FastWorkbook

    wb = FastWorkbook()
    for title, frame, columns, notes in sheets:
        cols = [Col(key, label, QTY if is_numeric_dtype(frame[key]) and not is_bool_dtype(frame[key]) else None,
                    max(12.0, min(40.0, len(label) * 1.6)))
                for key, label in columns if key in frame]
        wb.write_sheet(title[:31], frame, cols, freeze_cols=1, notes=notes)
    out = io.BytesIO()
    wb.save(out)  # type: ignore[arg-type]  # a zip file goes to any binary file object
    return out.getvalue()


def mv_project_files(dirs: list[Path]) -> list[Path]:
    """Savings-verification project files (`*.yaml`) in these folders."""
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            out.extend(sorted(d.glob("*.yaml")))
    return out


class MVProjects:
    """Savings-verification projects (verification) found in folders; each loaded and
    verified once per version of its files (content hashes and the project file's
    modification time)."""

    def __init__(self, dirs: list[Path], registry: Registry, store: Any):
        self.dirs = dirs
        self.registry = registry
        self.store = store
        self._results = FileCache()
        self._verifying = threading.Lock()  # one verification at a time: a second caller gets the first's result

    def projects(self) -> list[dict]:
        """id, name, institution ids it covers, file; projects that fail to load are
        listed with their error."""
        from verification import load_project

        out = []
        for f in mv_project_files(self.dirs):
            try:
                p = load_project(f, self.registry)
            except Exception as exc:  # a bad file must not take the page down: show the problem
                out.append({"id": f.stem, "name": f.stem, "institutions": set(), "file": f, "error": str(exc)})
                continue
            insts = {p.institution} if p.institution else set()
            by_id = self.registry.meter_by_id
            insts |= {by_id[m].institution for m in (p.meter_ids or p.meters or []) if m in by_id}
            out.append({"id": p.id, "name": p.name or p.id, "institutions": insts, "file": f, "error": None})
        return out

    def visible(self, user: Principal | None) -> list[dict]:
        """The `projects` `user` may see (`core.access.project_visible`)."""
        return [p for p in self.projects() if project_visible(user, self.registry, p["institutions"])]

    def result(self, file: Path) -> Any:
        """verification.verify of the project in `file` (cached per version of its files)."""
        from verification import load_project, verify

        project = load_project(file, self.registry)
        stamp = (*sorted(project.file_hashes.items()), file.stat().st_mtime_ns)
        with self._verifying:
            return self._results.get(file, stamp, lambda: verify(project, self.store, self.registry))

    def report_bytes(self, file: Path) -> bytes:
        from verification import write_report

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "mv.xlsx"
            write_report(self.result(file), out)
            return out.read_bytes()
