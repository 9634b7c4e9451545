"""Thin adapters to the quotas, alerts, ledger, report and savings-verification code.

Those packages are developed alongside the dashboard; each adapter imports lazily and
degrades to "not available" (an empty result or `NotAvailable`) when the package or
its input file is missing, so the dashboard always starts.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from civicwatt.registry import Registry


class NotAvailable(Exception):
    """The feature's package or configuration is not there."""


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class Quotas:
    """Dual-control targets and quota standards from quotas.yaml (None: none)."""

    def __init__(self, path: str | Path | None, registry: Registry):
        self.path = Path(path) if path else None
        self.registry = registry
        self._loaded: Any = None
        self._stamp: float | None = None

    def _config(self) -> Any | None:
        if self.path is None or not self.path.exists():
            return None
        stamp = self.path.stat().st_mtime_ns
        if stamp != self._stamp:
            mod = _module("quotas.config")
            if mod is None or not hasattr(mod, "load_quotas"):
                return None
            self._loaded = mod.load_quotas(self.path, self.registry)
            self._stamp = stamp
        return self._loaded

    def standards(self) -> pd.DataFrame | None:
        """Rows: category, indicator, constraint, baseline, guide (indicator named as
        in dashboard.data.QUOTA_INDICATORS)."""
        cfg = self._config()
        if cfg is None or not hasattr(cfg, "standards_frame"):
            return None
        return cfg.standards_frame()

    def targets(self, region: str | None, year: int) -> dict[str, float]:
        """Dual-control targets of a region and year: keys tce, water_m3, t_co2,
        kgce_per_m2, kgce_per_person, m3_per_person (missing keys: no target)."""
        cfg = self._config()
        if cfg is None or region is None or not hasattr(cfg, "targets_for"):
            return {}
        return dict(cfg.targets_for(f"region:{region}", year) or {})


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


def ledger_bytes(registry: Registry, store: Any, year: int, fmt: str, quotas_path: str | Path | None) -> bytes:
    """The annual carbon ledger of `registry`'s institutions as xlsx or csv bytes."""
    mod = _module("quotas.ledger")
    if mod is None or not hasattr(mod, "write_ledger"):
        raise NotAvailable("quotas.ledger")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"ledger.{fmt}"
        mod.write_ledger(registry, store, year, out, quotas_path=quotas_path)
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
