"""The xlsx submission template (reports.submission_form): written pre-filled, read back, errors by row and field;
downloaded from and uploaded to a real dashboard server."""

from __future__ import annotations

import base64
import io

import httpx
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import users as auth
from dashboard.app import create_app, serve
from reports.submission_form import FIRST_ITEM_ROW, TemplateError, audit_bytes, read_template, write_template
from tests import support_filing_world as w
from tests.support_web import callback, login

ROWS = pd.DataFrame({"energy": ["electricity", "water", "heat", "gasoline"], "metered": [True, False, False, False],
                     "quantity": [7200.0, float("nan"), 550.0, float("nan")], "unit": ["kWh", "m3", "GJ", "L"],
                     "cost_cny": [float("nan")] * 4})


def fill(data: bytes, values: dict[int, dict[int, object]]) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["填报"]
    for row, cells in values.items():
        for col, v in cells.items():
            ws.cell(row, col).value = v
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_template_round_trip_skips_metered_and_empty_rows():
    data = write_template("HB-0001", "测试单位1", "2026-11", ROWS)
    ws = openpyxl.load_workbook(io.BytesIO(data))["填报"]
    assert [c.value for c in ws[FIRST_ITEM_ROW - 1]] == ["能源品种", "能源代码", "数量", "计量单位", "费用（元）", "是否计量"]
    assert ws.cell(FIRST_ITEM_ROW, 1).value == "电力" and ws.cell(FIRST_ITEM_ROW, 6).value == "是"
    filled = fill(data, {FIRST_ITEM_ROW + 1: {3: 310, 5: 1240}, FIRST_ITEM_ROW + 3: {3: 80, 4: "L", 5: 600}})
    iid, month, items, rows = read_template(filled)
    assert (iid, month) == ("HB-0001", "2026-11")
    assert items == [{"energy": "water", "quantity": 310.0, "unit": "m3", "cost_cny": 1240.0},
                     {"energy": "heat", "quantity": 550.0, "unit": "GJ", "cost_cny": None},
                     {"energy": "gasoline", "quantity": 80.0, "unit": "L", "cost_cny": 600.0}]
    assert rows == [FIRST_ITEM_ROW + 1, FIRST_ITEM_ROW + 2, FIRST_ITEM_ROW + 3]


def test_template_errors_name_row_and_field():
    data = write_template("HB-0001", "测试单位1", "2026-11", ROWS)
    bad = fill(data, {FIRST_ITEM_ROW + 1: {3: "三百"}, FIRST_ITEM_ROW + 3: {3: 5, 4: "m3", 5: "x"}})
    with pytest.raises(TemplateError) as info:
        read_template(bad)
    assert [(p["row"], p["field"]) for p in info.value.problems] == [
        (FIRST_ITEM_ROW + 1, "数量"), (FIRST_ITEM_ROW + 3, "计量单位"), (FIRST_ITEM_ROW + 3, "费用（元）")]
    with pytest.raises(TemplateError, match="not an xlsx workbook"):
        read_template(b"institution_id,energy\n")
    headless = fill(data, {FIRST_ITEM_ROW - 1: {3: "qty"}, 1: {2: None}})
    with pytest.raises(TemplateError) as info:
        read_template(headless)
    assert {p["field"] for p in info.value.problems} == {"单位代码", "数量"}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8), st.floats(allow_nan=True), st.integers()), min_size=6,
                max_size=6))
def test_any_cells_give_items_or_row_problems(cells):
    data = fill(write_template("HB-0001", "n", "2026-11", ROWS.iloc[1:2]), {FIRST_ITEM_ROW: dict(enumerate(cells, 1))})
    try:
        _, _, items, rows = read_template(data)
    except TemplateError as exc:
        assert all(p["row"] >= 1 and p["field"] for p in exc.problems)
        return
    assert len(items) == len(rows) <= 1


def test_audit_export_has_chinese_headers():
    trail = pd.DataFrame([{"at": "2026-12-05T02:00:00+00:00", "who": "inst2", "source": "form", "action": "submit",
                           "institution_id": "HB-0002", "period_start": "2026-11-01", "period_end": "2026-11-30",
                           "energy": None, "field": "status", "old": "missing", "new": "submitted", "reason": None}])
    text = audit_bytes(trail, "csv").decode("utf-8-sig")
    assert text.splitlines()[0].startswith("时间（UTC）,操作人,来源,操作") and ",missing,submitted," in text
    back = pd.read_excel(io.BytesIO(audit_bytes(trail, "xlsx")), sheet_name="审计记录")
    assert back["新值"].tolist() == ["submitted"]


def test_download_fill_upload_over_http(tmp_path):
    filing = w.make_filing(tmp_path)
    users = tmp_path / "users.yaml"
    auth.set_user(users, "inst2", "institution", "HB-0002", "inst2-pass-123")
    app = create_app(filing.registry, filing.store, users, data_dir=tmp_path / "store", secret_key="k",
                     now=lambda: pd.Timestamp("2026-12-05 10:00", tz=w.TZ))
    handle = serve(app, "127.0.0.1", 0)
    try:
        with httpx.Client(base_url=handle.url) as c:
            login(c, "inst2", "inst2-pass-123")
            got = c.get(f"/download/submission/HB-0002/{w.MONTH}.xlsx")
            assert got.status_code == 200
            assert c.get("/download/submission/HB-0003/2026-11.xlsx").status_code == 403
            ws = openpyxl.load_workbook(io.BytesIO(got.content))["填报"]
            energies = [ws.cell(r, 2).value for r in range(FIRST_ITEM_ROW, ws.max_row + 1)]
            assert energies[:3] == ["electricity", "water", "natural_gas"] and "pv" not in energies
            reg = filing.registry
            area = reg.institution_by_id["HB-0002"].floor_area_m2
            values = {"electricity": (w.elec_kwh(reg, "HB-0002"), "kWh"), "water": (300.0, "t"),
                      "heat": (0.05 * area, "GJ")}
            filled = fill(got.content, {FIRST_ITEM_ROW + energies.index(e): {3: q, 4: u}
                                        for e, (q, u) in values.items()})

            def upload(data: bytes):
                url = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
                return callback(c, [("filing-form", "children"), ("filing-audit", "children"),
                                    ("filing-template", "href"), ("filing-audit-csv", "href"),
                                    ("filing-audit-xlsx", "href"), ("filing-warnings", "children"),
                                    ("filing-result", "children")],
                                [{"id": "filing-inst", "property": "value", "value": "HB-0002"},
                                 {"id": "filing-month", "property": "value", "value": w.MONTH},
                                 {"id": "filing-submit", "property": "n_clicks", "value": None},
                                 {"id": "filing-upload", "property": "contents", "value": url}],
                                state=[[], [], [], [], [], [], {"id": "filing-area", "property": "value", "value": None},
                                       {"id": "filing-occupants", "property": "value", "value": None},
                                       {"id": "lang", "property": "data", "value": "en"}],
                                changed=["filing-upload.contents"])

            wrong = upload(fill(filled, {FIRST_ITEM_ROW + 1: {3: "lots"}}))
            assert wrong.status_code == 200 and f"Row {FIRST_ITEM_ROW + 1}: 数量: is not a number" in wrong.text
            assert filing.book.get("HB-0002", w.MONTH) is None
            done = upload(filled)
            assert done.status_code == 200 and "Submitted" in done.text
        assert filing.book.get("HB-0002", w.MONTH)["status"] == "submitted"
        assert set(filing.book.audit(["HB-0002"])["source"]) == {"upload"}
    finally:
        handle.shutdown()
        filing.store.close()
