"""Thin adapters to the quotas, alerts, ledger, report and savings-verification code.

Those packages are developed alongside the dashboard; each adapter imports lazily and
degrades to "not available" (an empty result or `NotAvailable`) when the package or
its input file is missing, so the dashboard always starts.
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from pathlib import Path
from typing import Any

from civicwatt.registry import Registry


class NotAvailable(Exception):
    """The feature's package or configuration is not there."""


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class Quotas:
    """quotas.yaml, re-read when it changes (None without a file)."""

    def __init__(self, path: str | Path | None, registry: Registry):
        self.path = Path(path) if path else None
        self.registry = registry
        self._loaded: Any = None
        self._stamp: int | None = None
        self._lock = threading.Lock()

    def config(self) -> Any | None:
        """The `quotas.config.QuotaConfig`, or None."""
        if self.path is None or not self.path.exists():
            return None
        stamp = self.path.stat().st_mtime_ns
        with self._lock:
            if stamp != self._stamp:
                from quotas.config import load_quotas

                self._loaded = load_quotas(self.path, self.registry)
                self._stamp = stamp
            return self._loaded


_OUTBOXES: dict[Path, Any] = {}


def outbox(data_dir: Path | None) -> Any | None:
    """The alert outbox kept in `data_dir` (quotas.notify.Outbox), or None."""
    if data_dir is None:
        return None
    mod = _module("quotas.notify")
    if mod is None:
        return None
    key = Path(data_dir).resolve()
    if key not in _OUTBOXES:
        _OUTBOXES[key] = mod.Outbox(key)
    return _OUTBOXES[key]


def ledger_bytes(registry: Registry, visible: set[str] | None, store: Any, year: int, fmt: str,
                 quotas: Any | None) -> bytes:
    """The annual carbon ledger (quotas.ledger) as xlsx or csv bytes, limited to the
    `visible` institutions (None: all). Their rows keep their rank among all peers;
    the totals sheet is recomputed over the visible institutions only."""
    from dataclasses import replace

    from quotas.ledger import build_ledger, ledger_csv_bytes, write_ledger

    tables = build_ledger(store, registry, year, quotas=quotas)
    if visible is not None:
        from dashboard.access import scoped_registry

        own = build_ledger(store, scoped_registry(registry, visible), year, quotas=quotas)
        tables = replace(tables, ledger=tables.ledger[tables.ledger["institution_id"].isin(visible)],
                         summary=tables.summary[tables.summary["institution_id"].isin(visible)],
                         totals=own.totals)
        tables.summary.attrs.update(own.summary.attrs)
    if fmt == "csv":
        return ledger_csv_bytes(tables)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ledger.xlsx"
        write_ledger(tables, out)
        return out.read_bytes()


def report_bytes(registry: Registry, store: Any, month: str, quotas_path: str | Path | None) -> bytes:
    """The monthly statistical report (xlsx bytes)."""
    mod = _module("quotas.report")
    if mod is None or not hasattr(mod, "write_monthly_report"):
        raise NotAvailable("quotas.report")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.xlsx"
        mod.write_monthly_report(registry, store, month, out, quotas_path=quotas_path)
        return out.read_bytes()


def mv_projects(data_dir: Path | None, quotas_path: str | Path | None) -> list[dict]:
    """Savings-verification project files (`*.yaml` under `<data_dir>/mv/`): id,
    institution, energy, file."""
    if data_dir is None:
        return []
    folder = Path(data_dir) / "mv"
    if not folder.is_dir():
        return []
    import yaml

    out = []
    for f in sorted(folder.glob("*.yaml")):
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict):
            out.append({"id": doc.get("id", f.stem), "institution": doc.get("institution", ""),
                        "energy": doc.get("energy", ""), "file": f.name})
    return out
