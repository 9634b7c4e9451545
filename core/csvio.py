"""Readings and bills CSV files (interfaces.md): parsing with every problem reported by
line and field, and writing in the same format (a round trip of import).

Validation is vectorised over the whole file and collects every problem before anything
is written; a file with any problem is rejected whole.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.registry import Registry
from core.vocab import BILL_UNITS, ENERGIES, INDEX_UNIT
from core.yamlfile import ConfigError, Problem

READINGS_COLUMNS = ["meter_id", "time", "value"]
BILLS_COLUMNS = ["institution_id", "energy", "period_start", "period_end", "quantity", "unit", "cost_cny"]
MAX_LISTED = 200  # problems listed in full; the rest are counted
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
FIRST_DATA_LINE = 2  # line 1 is the header


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError([Problem(str(path), 1, "-", f"cannot read CSV: {exc}")]) from exc
    header = [c.strip() for c in df.columns]
    if header != columns:
        raise ConfigError([Problem(str(path), 1, "header", f"expected columns {','.join(columns)}, found {','.join(header)}")])
    df.columns = columns
    return df


def _problems(path: Path, mask: np.ndarray, field: str, message: str | pd.Series) -> pd.DataFrame:
    lines = np.flatnonzero(mask) + FIRST_DATA_LINE
    msg = message[mask].to_numpy() if isinstance(message, pd.Series) else np.full(len(lines), message)
    return pd.DataFrame({"line": lines, "field": field, "message": msg})


def _raise_if_any(path: Path, found: list[pd.DataFrame]) -> None:
    allp = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    if allp.empty:
        return
    allp = allp.sort_values(["line", "field"], kind="stable")
    problems = [Problem(str(path), int(r.line), r.field, r.message) for r in allp.head(MAX_LISTED).itertuples()]
    if len(allp) > MAX_LISTED:
        problems.append(Problem(str(path), int(allp["line"].iloc[MAX_LISTED]), "-",
                                f"... and {len(allp) - MAX_LISTED} more problems"))
    raise ConfigError(problems)


def _number(path: Path, s: pd.Series, field: str, found: list[pd.DataFrame], allow_empty: bool = False) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    empty = s.str.strip() == ""
    bad = num.isna().to_numpy() & ~(allow_empty & empty.to_numpy())
    found.append(_problems(path, bad, field, "'" + s.str.slice(0, 40) + "' is not a number"))
    inf = np.isinf(num.to_numpy(float, na_value=np.nan))
    found.append(_problems(path, inf, field, "is not finite"))
    neg = (num < 0).to_numpy()
    found.append(_problems(path, neg, field, "must not be negative"))
    return num


def parse_readings(path: str | Path, registry: Registry) -> pd.DataFrame:
    """Validated readings: meter_id, time (UTC), value. Raises ConfigError with every problem."""
    path = Path(path)
    df = _read(path, READINGS_COLUMNS)
    found: list[pd.DataFrame] = []
    meter = df["meter_id"].str.strip()
    known = meter.isin(set(registry.meter_by_id))
    found.append(_problems(path, ~known.to_numpy(), "meter_id", "unknown meter '" + meter + "'"))
    raw_time = df["time"].str.strip()
    time = pd.to_datetime(raw_time, format="ISO8601", utc=True, errors="coerce")
    found.append(_problems(path, time.isna().to_numpy(), "time", "'" + raw_time.str.slice(0, 40) + "' is not an ISO 8601 time"))
    no_offset = time.notna().to_numpy() & ~raw_time.str.contains(_OFFSET).to_numpy()
    found.append(_problems(path, no_offset, "time", "has no UTC offset (write e.g. 2025-01-01T00:00:00+08:00)"))
    value = _number(path, df["value"], "value", found)
    ok = known & time.notna() & value.notna()
    key = pd.DataFrame({"meter_id": meter, "t": time, "value": value})[ok]
    dup = key.duplicated(["meter_id", "t"], keep=False)
    if dup.any():
        groups = key[dup].groupby(["meter_id", "t"])["value"]
        conflicting = groups.transform("nunique") > 1
        idx = conflicting[conflicting].index.to_numpy()
        mask = np.zeros(len(df), bool)
        mask[idx] = True
        found.append(_problems(path, mask, "value", "duplicate of another line with a different value"))
    _raise_if_any(path, found)
    out = pd.DataFrame({"meter_id": meter.to_numpy(), "time": time.to_numpy(), "value": value.to_numpy(float)})
    return out.drop_duplicates(["meter_id", "time"]).reset_index(drop=True)


def parse_bills(path: str | Path, registry: Registry) -> pd.DataFrame:
    """Validated bills (BILL_COLUMNS). Raises ConfigError with every problem."""
    path = Path(path)
    df = _read(path, BILLS_COLUMNS)
    found: list[pd.DataFrame] = []
    inst = df["institution_id"].str.strip()
    found.append(_problems(path, ~inst.isin(set(registry.institution_by_id)).to_numpy(), "institution_id",
                           "unknown institution '" + inst + "'"))
    energy = df["energy"].str.strip()
    bad_energy = ~energy.isin(ENERGIES)
    found.append(_problems(path, bad_energy.to_numpy(), "energy", "unknown energy '" + energy + "'"))
    dates = {}
    for col in ("period_start", "period_end"):
        d = pd.to_datetime(df[col].str.strip(), format="%Y-%m-%d", errors="coerce")
        found.append(_problems(path, d.isna().to_numpy(), col, "'" + df[col] + "' is not a date (YYYY-MM-DD)"))
        dates[col] = d
    backwards = (dates["period_end"] < dates["period_start"]).to_numpy()
    found.append(_problems(path, backwards, "period_end", "is before period_start"))
    qty = _number(path, df["quantity"], "quantity", found)
    cost = _number(path, df["cost_cny"], "cost_cny", found, allow_empty=True)
    unit = df["unit"].str.strip()
    allowed = pd.Series([u in BILL_UNITS.get(e, set()) for e, u in zip(energy, unit, strict=True)], index=df.index)
    found.append(_problems(path, (~allowed & ~bad_energy).to_numpy(), "unit",
                           "unit '" + unit + "' does not fit energy '" + energy + "'"))
    out = pd.DataFrame({"institution_id": inst, "energy": energy, "period_start": dates["period_start"].dt.date,
                        "period_end": dates["period_end"].dt.date, "quantity": qty, "unit": unit, "cost_cny": cost})
    dup = out.duplicated(["institution_id", "energy", "period_start", "period_end"], keep=False).to_numpy()
    if dup.any():
        differs = out[dup].groupby(["institution_id", "energy", "period_start", "period_end"])["quantity"].transform("nunique") > 1
        mask = np.zeros(len(df), bool)
        mask[differs[differs].index.to_numpy()] = True
        found.append(_problems(path, mask, "quantity", "duplicate of another bill for the same period with a different quantity"))
    _raise_if_any(path, found)
    return out.drop_duplicates(["institution_id", "energy", "period_start", "period_end"]).reset_index(drop=True)


def readings_csv(samples: pd.DataFrame, tz: str) -> str:
    """Samples as readings CSV text (local times with offset, full-precision values)."""
    local = pd.DatetimeIndex(samples["time"]).tz_convert(tz)
    text = local.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = text.str.slice(0, -2) + ":" + text.str.slice(-2)
    out = pd.DataFrame({"meter_id": samples["meter_id"].to_numpy(), "time": text,
                        "value": [repr(float(v)) for v in samples["value"].to_numpy(float)]})
    return out.to_csv(index=False, lineterminator="\n")


def consumption_csv(cons: pd.DataFrame, registry: Registry) -> str:
    """Consumption as `meter_id,period_start,quantity,unit,estimated_share` CSV text."""
    units = {m.id: INDEX_UNIT[m.energy] for m in registry.meters}
    start = pd.DatetimeIndex(cons["period_start"]).strftime("%Y-%m-%dT%H:%M:%S%z")
    start = start.str.slice(0, -2) + ":" + start.str.slice(-2)
    out = pd.DataFrame({
        "meter_id": cons["meter_id"].to_numpy(),
        "period_start": start,
        "quantity": np.round(cons["quantity"].to_numpy(float), 6),
        "unit": cons["meter_id"].map(units).fillna("").to_numpy(),
        "estimated_share": np.round(cons["estimated_share"].to_numpy(float), 4),
    })
    return out.to_csv(index=False, lineterminator="\n")
