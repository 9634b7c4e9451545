"""Driver CSVs of a savings-verification project (temperature, normal year, calendar), problems by row and field.

Lines in problems are file lines: the header is line 1, the first row line 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.yamlfile import ConfigError, Problem

TEMP_RANGE_C = (-60.0, 60.0)  # plausible daily mean air temperatures
WORKING_VALUES = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


def _read_csv(path: Path, required: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV with a header (every cell a stripped string); ConfigError for a missing
    file, an unreadable one or missing columns."""
    if not path.exists():
        raise ConfigError([Problem(str(path), 0, "-", "file not found")])
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError([Problem(str(path), 1, "-", f"cannot read CSV: {exc}")]) from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ConfigError([Problem(str(path), 1, ", ".join(missing),
                                   f"missing column(s); the header must have {', '.join(required + list(optional))}")])
    return df


def _row_problems(path: Path, bad: np.ndarray, field_name: str, message: str, values: pd.Series,
                  limit: int = 5) -> list[Problem]:
    """One Problem per bad row (at most `limit`, then a summary); line = row + 2."""
    rows = np.flatnonzero(bad)
    out = [Problem(str(path), int(r) + 2, field_name, f"{message}: {values.iloc[r]!r}") for r in rows[:limit]]
    if len(rows) > limit:
        out.append(Problem(str(path), int(rows[limit]) + 2, field_name, f"... and {len(rows) - limit} more such rows"))
    return out


def parse_dates(path: Path, df: pd.DataFrame, problems: list[Problem]) -> pd.Series:
    """The `date` column as datetime64 (midnight); bad or duplicate dates are problems."""
    raw = df["date"].astype(str).str.strip()
    dates = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
    problems += _row_problems(path, dates.isna().to_numpy(), "date", "not a date (YYYY-MM-DD)", raw)
    dup = dates.duplicated(keep="first").to_numpy() & dates.notna().to_numpy()
    problems += _row_problems(path, dup, "date", "date repeated (one row per day expected)", raw)
    return dates


def parse_number(path: Path, df: pd.DataFrame, column: str, problems: list[Problem],
                 lo: float = -np.inf, hi: float = np.inf) -> pd.Series:
    """A numeric column (float); non-numbers and values outside [lo, hi] are problems."""
    raw = df[column].astype(str).str.strip()
    num = pd.to_numeric(raw, errors="coerce")
    problems += _row_problems(path, num.isna().to_numpy(), column, "not a number", raw)
    out_of_range = num.notna().to_numpy() & ((num < lo) | (num > hi)).to_numpy()
    problems += _row_problems(path, out_of_range, column, f"outside [{lo:g}, {hi:g}]", raw)
    return num.astype(float)


def read_temperature_csv(path: str | Path) -> pd.DataFrame:
    """`date,temp_c` (daily mean air temperature, °C) sorted by date; raise ConfigError."""
    path = Path(path)
    df = _read_csv(path, ["date", "temp_c"])
    problems: list[Problem] = []
    dates = parse_dates(path, df, problems)
    temp = parse_number(path, df, "temp_c", problems, *TEMP_RANGE_C)
    if problems:
        raise ConfigError(problems)
    return pd.DataFrame({"date": dates.to_numpy(), "temp_c": temp.to_numpy()}).sort_values("date", ignore_index=True)


def read_calendar_csv(path: str | Path) -> pd.DataFrame:
    """`date,working[,occupancy]`: working 0/1 (or true/false), occupancy in persons."""
    path = Path(path)
    df = _read_csv(path, ["date", "working"], ("occupancy",))
    problems: list[Problem] = []
    dates = parse_dates(path, df, problems)
    raw = df["working"].astype(str).str.strip().str.lower()
    working = raw.map(WORKING_VALUES)
    problems += _row_problems(path, working.isna().to_numpy(), "working", "must be 0 or 1", raw)
    out = pd.DataFrame({"date": dates.to_numpy(), "working": working.to_numpy(float)})
    if "occupancy" in df.columns:
        out["occupancy"] = parse_number(path, df, "occupancy", problems, 0.0).to_numpy()
    if problems:
        raise ConfigError(problems)
    return out.sort_values("date", ignore_index=True)
