"""The savings-verification workbook (openpyxl).

Sheets: `summary` (key, value; interfaces.md), `periods` (one row per reporting
period), `chart` (monthly baseline-period actual and fit, adjusted baseline and actual,
with a line chart), `baseline_data` (every baseline period with its fit), `drivers`
(every day: temperature, day type, degree days at the chosen balance points),
`models` (every candidate model with its statistics), `normal_year` (when given),
`inputs` (key, value: every input, file hashes, coefficients) and `project_file`
(the project file verbatim). With these a third party can recompute every figure.
The file is written to a temporary name and renamed, so a failed run leaves no report.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.utils import get_column_letter

from verification.result import MVResult


def _cell(value: Any) -> Any:
    """A value openpyxl can store: no NaN, no numpy scalars, naive datetimes."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, (list, tuple, dict)):
        return str(value)
    return value


def _frame_sheet(wb: Workbook, title: str, df: pd.DataFrame):
    """A sheet of a frame with a header row (write-only mode: streamed, fast)."""
    ws = wb.create_sheet(title)
    for j, col in enumerate(df.columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = max(12, min(40, len(str(col)) + 2))
    ws.freeze_panes = "A2"
    ws.append([str(c) for c in df.columns])
    columns = []
    for col in df.columns:
        series = df[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            columns.append([None if pd.isna(v) else v.to_pydatetime().replace(tzinfo=None) for v in series])
        elif pd.api.types.is_float_dtype(series):
            values = series.to_numpy(float)
            columns.append([None if not math.isfinite(v) else v for v in values.tolist()])
        else:
            columns.append([_cell(v) for v in series.tolist()])
    for row in zip(*columns, strict=True):
        ws.append(row)
    return ws


def _kv_sheet(wb: Workbook, title: str, items: dict[str, Any]) -> None:
    ws = wb.create_sheet(title)
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 60
    ws.append(["key", "value"])
    for k, v in items.items():
        ws.append([k, _cell(v)])


def chart_frame(result: MVResult) -> pd.DataFrame:
    """Monthly totals: actual (both periods), baseline model (fit, then prediction),
    adjusted baseline (reporting only)."""
    b = result.baseline_periods
    r = result.periods
    bm = pd.DataFrame({"month": pd.DatetimeIndex(b["date"]).to_period("M").to_timestamp(),
                       "actual": b["actual"], "baseline_model": b["fitted"], "adjusted_baseline": np.nan})
    rm = pd.DataFrame({"month": pd.DatetimeIndex(r["date"]).to_period("M").to_timestamp(),
                       "actual": r["actual"], "baseline_model": r["baseline"], "adjusted_baseline": r["adjusted_baseline"]})
    out = []
    for df in (bm, rm):
        g = df.groupby("month", sort=True)
        out.append(pd.DataFrame({"month": list(g.groups), "actual": g["actual"].sum(min_count=1).to_numpy(),
                                 "baseline_model": g["baseline_model"].sum(min_count=1).to_numpy(),
                                 "adjusted_baseline": g["adjusted_baseline"].sum(min_count=1).to_numpy()}))
    out[0]["phase"] = "baseline"
    out[1]["phase"] = "reporting"
    return pd.concat(out, ignore_index=True)[["month", "phase", "actual", "baseline_model", "adjusted_baseline"]]


def write_report(result: MVResult, out: str | Path) -> Path:
    """Write the workbook atomically; return its path."""
    out = Path(out)
    unit = result.summary.get("unit", "")
    wb = Workbook(write_only=True)
    _kv_sheet(wb, "summary", result.summary)
    _frame_sheet(wb, "periods", result.periods)

    cf = chart_frame(result)
    ws = _frame_sheet(wb, "chart", cf)
    chart = LineChart()
    chart.title = f"{result.project.id}: baseline, adjusted baseline and actual ({unit} per month)"
    chart.y_axis.title = unit
    chart.x_axis.title = "month"
    chart.x_axis.number_format = "yyyy-mm"
    chart.x_axis.delete = False  # openpyxl >= 3.1 hides axes unless told otherwise
    chart.y_axis.delete = False
    chart.height, chart.width = 10, 24
    data = Reference(ws, min_col=3, max_col=5, min_row=1, max_row=len(cf) + 1)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(cf) + 1))
    ws.add_chart(chart, "G2")

    _frame_sheet(wb, "baseline_data", result.baseline_periods)
    _frame_sheet(wb, "drivers", result.drivers)
    _frame_sheet(wb, "models", result.candidates)
    if result.normal is not None:
        _frame_sheet(wb, "normal_year", result.normal)
    _kv_sheet(wb, "inputs", result.inputs)
    ws = wb.create_sheet("project_file")
    ws.column_dimensions["B"].width = 100
    ws.append(["line", "text"])
    try:
        lines = Path(result.project.source).read_text(encoding="utf-8-sig").splitlines()
    except OSError:
        lines = []
    for i, text in enumerate(lines, start=1):
        ws.append([i, text])

    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        wb.save(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
