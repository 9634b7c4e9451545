"""The monthly submission workbook (填报模板, xlsx with Chinese headers): written pre-filled, read back as items.

Sheet `填报` starts with a header block (单位代码, 单位名称, 填报月份), then one row per
energy with the columns of TEMPLATE_HEADERS: 能源品种 (name), 能源代码 (the energy id of
`core.vocab`), 数量, 计量单位 (one of `core.vocab.BILL_UNITS`), 费用（元）, 是否计量 (metered
energies are shown for information and ignored on upload). `read_template` returns the
institution, the month and the items, or every problem by row and field (the row as Excel
numbers it). The audit trail export (`audit_bytes`) is here too: the same Chinese headers
style, xlsx or csv.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
from openpyxl.styles import Font, PatternFill

from core.vocab import BILL_UNITS, ENERGY_ZH

SHEET = "填报"
HEADER_ROWS = {"institution_id": "单位代码", "institution_name": "单位名称", "month": "填报月份"}
TEMPLATE_HEADERS = {"energy_zh": "能源品种", "energy": "能源代码", "quantity": "数量", "unit": "计量单位",
                    "cost_cny": "费用（元）", "metered": "是否计量"}
FIRST_ITEM_ROW = 6  # rows 1-3 the header block, 5 the column headers
AUDIT_HEADERS = {"at": "时间（UTC）", "who": "操作人", "source": "来源", "action": "操作", "institution_id": "单位代码",
                 "period_start": "起始日期", "period_end": "截止日期", "energy": "能源代码", "field": "字段",
                 "old": "原值", "new": "新值", "reason": "原因"}
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_ROWS = 200


class TemplateError(Exception):
    """An uploaded workbook that cannot be read: `problems` (row, field, message)."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        super().__init__("; ".join(f"row {p['row']}: {p['field']}: {p['message']}" for p in problems))


def write_template(institution_id: str, name: str, month: str, rows: pd.DataFrame) -> bytes:
    """The workbook for one institution and month; `rows`: energy, metered, quantity, unit,
    cost_cny (the entry form's rows: stored or metered figures pre-filled, else empty)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = SHEET
    for r, (key, label) in enumerate(HEADER_ROWS.items(), start=1):
        ws.cell(r, 1, label).font = Font(bold=True)
        ws.cell(r, 2, {"institution_id": institution_id, "institution_name": name, "month": month}[key])
    for c, label in enumerate(TEMPLATE_HEADERS.values(), start=1):
        cell = ws.cell(FIRST_ITEM_ROW - 1, c, label)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for r, row in enumerate(rows.to_dict("records"), start=FIRST_ITEM_ROW):
        values = [ENERGY_ZH.get(row["energy"], row["energy"]), row["energy"],
                  None if pd.isna(row["quantity"]) else float(row["quantity"]), row["unit"],
                  None if pd.isna(row.get("cost_cny")) else float(row["cost_cny"]), "是" if row["metered"] else "否"]
        for c, v in enumerate(values, start=1):
            ws.cell(r, c, v)
    for col, width in zip("ABCDEF", (14, 14, 14, 10, 14, 10), strict=True):
        ws.column_dimensions[col].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def read_template(data: bytes) -> tuple[str, str, list[dict[str, Any]], list[int]]:
    """(institution_id, month, items, the Excel row of each item) from an uploaded workbook,
    or TemplateError with every problem by row and field."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise TemplateError([{"row": 0, "field": "-", "message": f"larger than {MAX_UPLOAD_BYTES // 2**20} MiB"}])
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not xlsx
        raise TemplateError([{"row": 0, "field": "-", "message": f"not an xlsx workbook ({type(exc).__name__})"}]) \
            from None
    if SHEET not in wb.sheetnames:
        raise TemplateError([{"row": 0, "field": "-", "message": f"no sheet '{SHEET}': use the downloaded template"}])
    rows = list(wb[SHEET].iter_rows(min_row=1, max_row=FIRST_ITEM_ROW + MAX_ROWS, values_only=True))
    wb.close()
    head = {str(r[0]).strip(): r[1] for r in rows[:FIRST_ITEM_ROW - 2] if r and r[0] is not None}
    problems = []
    iid, month = str(head.get("单位代码") or "").strip(), str(head.get("填报月份") or "").strip()
    if not iid:
        problems.append({"row": 1, "field": "单位代码", "message": "is empty"})
    if not month:
        problems.append({"row": 3, "field": "填报月份", "message": "is empty"})
    labels = [str(x).strip() if x is not None else "" for x in (rows[FIRST_ITEM_ROW - 2] if len(rows) >= FIRST_ITEM_ROW - 1
                                                               else [])]
    pos = {key: labels.index(label) for key, label in TEMPLATE_HEADERS.items() if label in labels}
    for key in ("energy", "quantity", "unit"):
        if key not in pos:
            problems.append({"row": FIRST_ITEM_ROW - 1, "field": TEMPLATE_HEADERS[key], "message": "column missing"})
    if problems:
        raise TemplateError(problems)
    body = pd.DataFrame([list(r) + [None] * (len(labels) - len(r)) for r in rows[FIRST_ITEM_ROW - 1:]],
                        columns=range(len(labels))) if len(rows) >= FIRST_ITEM_ROW else pd.DataFrame(
        columns=range(len(labels)))
    body["_row"] = np.arange(FIRST_ITEM_ROW, FIRST_ITEM_ROW + len(body))
    frame = pd.DataFrame({key: body[pos[key]] if key in pos else None for key in TEMPLATE_HEADERS})
    frame["_row"] = body["_row"]
    frame = frame[frame["energy"].notna() & (frame["energy"].astype(str).str.strip() != "")]
    metered = frame["metered"].astype(str).str.strip().isin(["是", "yes", "true", "1"])
    frame = frame[~metered.to_numpy(bool) & frame["quantity"].notna().to_numpy(bool)]
    qty = pd.to_numeric(frame["quantity"], errors="coerce")
    cost = pd.to_numeric(frame["cost_cny"], errors="coerce")
    bad_q = qty.isna().to_numpy(bool)
    bad_c = (frame["cost_cny"].notna() & cost.isna()).to_numpy(bool)
    energy = frame["energy"].astype(str).str.strip()
    unit = frame["unit"].astype(str).str.strip()
    bad_u = ~(energy + "|" + unit).isin({f"{e}|{u}" for e, us in BILL_UNITS.items() for u in us}).to_numpy(bool)
    rows_ = frame["_row"].to_numpy(int)
    for mask, field, message in ((bad_q, "数量", "is not a number"), (bad_c, "费用（元）", "is not a number"),
                                 (bad_u, "计量单位", "does not fit the energy (see core.vocab.BILL_UNITS)")):
        problems += [{"row": int(r), "field": field, "message": message} for r in rows_[mask]]
    if problems:
        raise TemplateError(sorted(problems, key=lambda p: (p["row"], p["field"])))
    items = [{"energy": e, "quantity": float(q), "unit": u, "cost_cny": None if pd.isna(c) else float(c)}
             for e, q, u, c in zip(energy, qty, unit, cost, strict=True)]
    return iid, month, items, [int(r) for r in rows_]


def audit_bytes(audit: pd.DataFrame, fmt: str) -> bytes:
    """The audit trail with Chinese headers as xlsx or csv (UTF-8 with BOM) bytes."""
    frame = audit.rename(columns=AUDIT_HEADERS)[list(AUDIT_HEADERS.values())]
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8-sig")
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="审计记录", index=False)
    return out.getvalue()
