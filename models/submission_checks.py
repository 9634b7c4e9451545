"""Data-quality checks of monthly submissions at entry (issue 13 item 2): codes, messages, pure vectorised tests.

Every check has a stable code, a severity and a message in Chinese and English
(`CHECKS`, listed in the README). An **error** blocks the submission; a **warning** needs
a written reason (`reasons[code]`) before the submission is accepted. The checks run over
frames prepared by the service (`quotas.filing`), vectorised over any number of items and
institutions (an uploaded workbook is checked at once):

items (one row per submitted item)
    index (position in the submission), institution_id, energy, quantity (as stated),
    unit, cost_cny, known_energy, unit_ok (the unit is one of `core.vocab.BILL_UNITS`),
    quantity_c (canonical unit, NaN where it cannot be converted), last_year_c (the same
    month last year, canonical; NaN: none), metered (the institution has a main meter of
    this energy), duplicate (an earlier item has the same energy).
institutions (one row per institution submitting)
    institution_id, floor_area_m2, occupants (registered), floor_area_given,
    occupants_given (NaN: not stated), kgce_per_m2 (the month with the submission),
    peer_low, peer_high (the peer group's 1st and 99th percentile of the same month last
    year; NaN: too few peers).
missing (one row per item expected but absent)
    institution_id, energy, last_year_c.

`run_checks` returns FINDING_COLUMNS: code, severity, institution_id, index (item
position, -1 for the institution), field, energy, message_zh, message_en.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.vocab import ENERGY_ZH

YOY_LIMIT = 0.30  # ±30 % against the same month last year
PEER_PERCENTILES = (0.01, 0.99)  # the peer group's plausible band of intensity
MIN_PEERS = 10  # fewer peers with data: no intensity check
AREA_TOLERANCE = 0.005  # a stated area or occupancy within 0.5 % of the registered one is no change
#: Plausible cost per canonical unit (CNY per kWh, m3, GJ, kg), public-institution tariffs
#: in China 2024-2026 (*check* per region: they are data, replace them with local tariffs).
COST_BAND_CNY: dict[str, tuple[float, float]] = {
    "electricity": (0.3, 2.0), "water": (1.0, 15.0), "natural_gas": (2.0, 6.0), "heat": (20.0, 120.0),
    "gasoline": (7.0, 15.0), "diesel": (6.0, 13.0), "lpg": (3.0, 15.0), "coal": (0.3, 2.5), "pv": (0.0, 2.0),
}
FINDING_COLUMNS = ["code", "severity", "institution_id", "index", "field", "energy", "message_zh", "message_en"]


@dataclass(frozen=True)
class Check:
    """One check: stable `code`, `severity` (error | warning), the `field` it points at,
    messages (str.format templates over the row's columns), and its test (a vectorised
    mask over the frame it runs on: items, institutions or missing)."""

    code: str
    severity: str
    on: str
    field: str
    zh: str
    en: str
    test: Callable[[pd.DataFrame], np.ndarray]


def _q(f: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(f["quantity"], errors="coerce").to_numpy(float)


def _cost(f: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(f["cost_cny"], errors="coerce").to_numpy(float)


def _valid(f: pd.DataFrame) -> np.ndarray:
    """Items whose energy, unit and quantity are right (the value checks look only at those)."""
    return f["known_energy"].to_numpy(bool) & f["unit_ok"].to_numpy(bool) & np.isfinite(_q(f))


def _yoy(f: pd.DataFrame) -> np.ndarray:
    ly, q = f["last_year_c"].to_numpy(float), f["quantity_c"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        change = q / ly - 1.0
    return _valid(f) & (ly > 0) & (q > 0) & (np.abs(change) > YOY_LIMIT)


def _cost_band(f: pd.DataFrame) -> np.ndarray:
    band = f["energy"].map(COST_BAND_CNY)
    low = band.map(lambda b: b[0] if isinstance(b, tuple) else np.nan).to_numpy(float)
    high = band.map(lambda b: b[1] if isinstance(b, tuple) else np.nan).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        per_unit = _cost(f) / f["quantity_c"].to_numpy(float)
    return _valid(f) & (f["quantity_c"].to_numpy(float) > 0) & (_cost(f) > 0) & ((per_unit < low) | (per_unit > high))


def _changed(given: pd.Series, registered: pd.Series) -> np.ndarray:
    g, r = pd.to_numeric(given, errors="coerce").to_numpy(float), registered.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.abs(g - r) / np.where(r > 0, r, 1.0)
    return np.isfinite(g) & (rel > AREA_TOLERANCE)


def _given_bad(given: pd.Series) -> np.ndarray:
    g = pd.to_numeric(given, errors="coerce")
    return (given.notna() & (g.isna() | ~np.isfinite(g.fillna(0)) | (g < 0))).to_numpy(bool)


CHECKS: dict[str, Check] = {c.code: c for c in (
    Check("UNKNOWN_ENERGY", "error", "items", "energy", "未知的能源品种 {energy!s:.80}", "unknown energy {energy!s:.80}",
          lambda f: ~f["known_energy"].to_numpy(bool)),
    Check("BAD_UNIT", "error", "items", "unit", "{energy}的计量单位不能是 {unit!s:.80}",
          "unit {unit!s:.80} does not fit {energy}", lambda f: f["known_energy"].to_numpy(bool)
          & ~f["unit_ok"].to_numpy(bool)),
    Check("NOT_A_NUMBER", "error", "items", "quantity", "{energy}的数量不是有限数值", "the quantity of {energy} is not a "
          "finite number", lambda f: ~np.isfinite(_q(f))),
    Check("DUPLICATE_ITEM", "error", "items", "energy", "{energy}填报了不止一次", "{energy} is entered more than once",
          lambda f: f["duplicate"].to_numpy(bool)),
    Check("NEGATIVE", "error", "items", "quantity", "{energy}的数量或费用为负数", "the quantity or cost of {energy} is "
          "negative", lambda f: (_q(f) < 0) | (_cost(f) < 0)),
    Check("ZERO", "warning", "items", "quantity", "{energy}的数量为零", "the quantity of {energy} is zero",
          lambda f: _valid(f) & (_q(f) == 0)),
    Check("METERED_ENERGY", "error", "items", "energy", "{energy}已由计量表采集，不能手工填报",
          "{energy} is metered: its figure comes from the meters, not from entry",
          lambda f: f["known_energy"].to_numpy(bool) & f["metered"].to_numpy(bool)),
    Check("YOY_CHANGE", "warning", "items", "quantity", "{energy}与上年同月相比变化超过±30%（上年同月 {last_year_c:.6g}）",
          "{energy} changed by more than ±30 % against the same month last year ({last_year_c:.6g})", _yoy),
    Check("COST_PER_UNIT", "warning", "items", "cost_cny", "{energy}的单价超出合理范围",
          "the cost per unit of {energy} is outside the plausible band", _cost_band),
    Check("MISSING_ITEM", "warning", "missing", "energy", "上年同月填报了{energy}，本月未填报",
          "{energy} was reported for the same month last year but is missing", lambda f: np.ones(len(f), bool)),
    Check("PEER_INTENSITY", "warning", "institutions", "quantity",
          "单位面积能耗 {kgce_per_m2:.4g} kgce/m² 超出同类单位上年同月的1%–99%分位区间（{peer_low:.4g}–{peer_high:.4g}）",
          "energy per floor area {kgce_per_m2:.4g} kgce/m2 is outside the peer group's 1st-99th percentile "
          "of the same month last year ({peer_low:.4g}-{peer_high:.4g})",
          lambda f: np.isfinite(f["peer_low"].to_numpy(float))
          & ((f["kgce_per_m2"].to_numpy(float) < f["peer_low"].to_numpy(float))
             | (f["kgce_per_m2"].to_numpy(float) > f["peer_high"].to_numpy(float)))),
    Check("BAD_AREA", "error", "institutions", "floor_area_m2", "建筑面积或用能人数不是非负数值",
          "the floor area or occupancy is not a non-negative number",
          lambda f: _given_bad(f["floor_area_given"]) | _given_bad(f["occupants_given"])),
    Check("AREA_CHANGE", "warning", "institutions", "floor_area_m2", "建筑面积与登记的 {floor_area_m2:g} m² 不同",
          "the floor area differs from the registered {floor_area_m2:g} m2",
          lambda f: _changed(f["floor_area_given"], f["floor_area_m2"])),
    Check("OCCUPANCY_CHANGE", "warning", "institutions", "occupants", "用能人数与登记的 {occupants:g} 人不同",
          "the occupancy differs from the registered {occupants:g}",
          lambda f: _changed(f["occupants_given"], f["occupants"])),
)}


def run_checks(items: pd.DataFrame, institutions: pd.DataFrame, missing: pd.DataFrame) -> pd.DataFrame:
    """Every finding of CHECKS over the prepared frames (module docstring), FINDING_COLUMNS,
    errors first, then by institution and item."""
    frames = {"items": items, "institutions": institutions, "missing": missing}
    found = []
    for check in CHECKS.values():
        frame = frames[check.on]
        if frame.empty:
            continue
        if check.on == "items" and check.code not in ("UNKNOWN_ENERGY", "BAD_UNIT", "NOT_A_NUMBER"):
            mask = check.test(frame) & frame["known_energy"].to_numpy(bool)
        else:
            mask = check.test(frame)
        hit = frame[np.asarray(mask, bool)]
        if hit.empty:
            continue
        records = hit.to_dict("records")  # only the flagged rows are formatted
        zh = [check.zh.format(**{**r, "energy": ENERGY_ZH.get(r.get("energy"), r.get("energy"))}) for r in records]
        en = [check.en.format(**r) for r in records]
        found.append(pd.DataFrame({
            "code": check.code, "severity": check.severity, "institution_id": hit["institution_id"].to_numpy(object),
            "index": hit["index"].to_numpy(np.int64) if "index" in hit else np.full(len(hit), -1, np.int64),
            "field": check.field, "energy": hit["energy"].to_numpy(object) if "energy" in hit else None,
            "message_zh": zh, "message_en": en}))
    if not found:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
    out = pd.concat(found, ignore_index=True)
    out["_rank"] = (out["severity"] != "error").astype(int)
    return out.sort_values(["_rank", "institution_id", "index"], kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


def blocking(findings: pd.DataFrame, reasons: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(errors, warnings without a written reason): what stops a submission."""
    errors = findings[findings["severity"] == "error"]
    given = {code for code, text in (reasons or {}).items() if isinstance(text, str) and text.strip()}
    open_warnings = findings[(findings["severity"] == "warning") & ~findings["code"].isin(given)]
    return errors, open_warnings
