"""The monthly submission service (quotas.filing) in-process: checks, review, scope, audit, indicators."""

from __future__ import annotations

import pandas as pd
import pytest

from core.access import Forbidden
from models.api import indicators
from models.energy import energy_use
from quotas.filing import approve as approve_month
from quotas.filing import audit_trail, list_submissions, prefill, return_month, submit
from tests.support_filing_world import ADMIN, BD, INST2, INST3, MONTH, SJZ, elec_kwh, good_items, make_filing


@pytest.fixture
def filing(tmp_path):
    f = make_filing(tmp_path)
    yield f
    f.store.close()
    f.book.close()


def body(filing, iid="HB-0002", **kw):
    return {"institution_id": iid, "month": MONTH, "items": good_items(filing.registry, iid), **kw}


def codes(result, key):
    return sorted(p.get("code") for p in result.body[key])


def test_clean_submission_is_stored_as_bills_and_feeds_the_indicators(filing):
    got = submit(INST2, body(filing), filing, source="form")
    assert got.status == 201, got.body
    assert got.body == {"status": "submitted", "warnings": []}
    bills = filing.store.read_bills(["HB-0002"])
    nov = bills[pd.to_datetime(bills["period_start"]) == "2026-11-01"].set_index("energy")
    assert nov.loc["heat", "unit"] == "MJ" and nov.loc["water", "unit"] == "t"  # stored as stated
    use = energy_use(filing.store, filing.registry, "2026-11-01", "2026-12-01", "month", filing.factors,
                     institution_ids=["HB-0002"])
    ind = indicators(use, filing.registry, filing.factors, freq="month").set_index("institution_id")
    area = filing.registry.institution_by_id["HB-0002"].floor_area_m2
    assert ind.loc["HB-0002", "heat_gj"] == pytest.approx(0.05 * area)  # MJ converted through the unit table
    assert ind.loc["HB-0002", "water_m3"] == pytest.approx(315.0)
    assert ind.loc["HB-0002", "kgce"] == pytest.approx(elec_kwh(filing.registry, "HB-0002") * 0.1229
                                                       + 0.05 * area * 34.12)
    rows = list_submissions(SJZ, MONTH, filing).body
    assert rows["deadline"] == "2026-12-15" and rows["days_left"] == 10
    assert {r["institution_id"]: r["status"] for r in rows["submissions"]} == {
        "HB-0001": "missing", "HB-0003": "missing", "HB-0005": "missing", "HB-0007": "missing", "HB-0009": "missing",
        "HB-0011": "missing", "HB-0013": "missing"}  # sjz: the odd ones; HB-0002 is in bd
    assert {r["institution_id"]: r["status"] for r in list_submissions(BD, MONTH, filing).body["submissions"]}[
        "HB-0002"] == "submitted"


def test_out_of_range_figure_needs_a_reason(filing):
    items = good_items(filing.registry, "HB-0002", scale=1.6)  # +60 % electricity
    first = submit(INST2, body(filing, items=items), filing)
    assert first.status == 422 and first.body["problems"] == []
    assert "YOY_CHANGE" in codes(first, "warnings")
    warn = next(w for w in first.body["warnings"] if w["code"] == "YOY_CHANGE")
    assert (warn["index"], warn["field"], warn["energy"]) == (0, "quantity", "electricity")
    assert "±30 %" in warn["message_en"] and "电力" in warn["message_zh"]
    assert filing.store.read_bills(["HB-0002"])["period_start"].astype(str).tolist() == ["2025-11-01"] * 3  # nothing
    assert filing.book.get("HB-0002", MONTH) is None
    reasons = {c: "新教学楼投入使用" for c in codes(first, "warnings")}
    done = submit(INST2, body(filing, items=items, reasons=reasons), filing)
    assert done.status == 201 and "YOY_CHANGE" in codes(done, "warnings")
    assert filing.book.get("HB-0002", MONTH)["reasons"]["YOY_CHANGE"] == "新教学楼投入使用"


def test_errors_block(filing):
    items = [{"energy": "electricity", "quantity": -5, "unit": "kWh"},
             {"energy": "heat", "quantity": 10, "unit": "kWh"},
             {"energy": "steam", "quantity": 1, "unit": "t"},
             {"energy": "water", "quantity": None, "unit": "m3"}]
    got = submit(INST2, body(filing, items=items), filing)
    assert got.status == 422
    assert [(p["code"], p["index"]) for p in got.body["problems"]] == [
        ("NEGATIVE", 0), ("BAD_UNIT", 1), ("UNKNOWN_ENERGY", 2), ("NOT_A_NUMBER", 3)]
    metered = submit(ADMIN, body(filing, "HB-0001", items=[{"energy": "electricity", "quantity": 7200,
                                                               "unit": "kWh"}]), filing)
    assert codes(metered, "problems") == ["METERED_ENERGY"]
    future = submit(INST2, {**body(filing), "month": "2026-12"}, filing)
    assert codes(future, "problems") == ["FUTURE_MONTH"]
    bad = submit(INST2, {"institution_id": "HB-0002", "month": MONTH, "items": [{"energy": "water"}]}, filing)
    assert bad.status == 422 and {p["field"] for p in bad.body["problems"]} == {"items.0.quantity", "items.0.unit"}


def test_missing_item_zero_cost_band_and_area_change(filing):
    items = [i for i in good_items(filing.registry) if i["energy"] != "heat"]
    items[1] = {**items[1], "quantity": 0.0, "cost_cny": None}
    items[0] = {**items[0], "cost_cny": items[0]["quantity"] * 9.0}  # 9 CNY/kWh
    got = submit(INST2, body(filing, items=items, floor_area_m2=12000, occupants=510), filing)
    assert codes(got, "warnings") == ["AREA_CHANGE", "COST_PER_UNIT", "MISSING_ITEM", "PEER_INTENSITY", "ZERO"]
    missing = next(w for w in got.body["warnings"] if w["code"] == "MISSING_ITEM")
    assert missing["energy"] == "heat" and missing["index"] is None
    assert codes(submit(INST2, body(filing, floor_area_m2=-1), filing), "problems") == ["BAD_AREA"]


def test_peer_intensity_band(filing):
    far = good_items(filing.registry, "HB-0004", scale=1.25)  # inside ±30 %, but above every school
    far[2] = {**far[2], "quantity": far[2]["quantity"] * 1.25}
    got = submit(ADMIN, body(filing, "HB-0004", items=far), filing)
    assert codes(got, "warnings") == ["PEER_INTENSITY"]
    assert "kgce/m2" in got.body["warnings"][0]["message_en"]
    assert submit(ADMIN, body(filing, "HB-0004"), filing).status == 201


def test_review_cycle_lock_and_audit(filing):
    assert submit(INST2, body(filing), filing, source="form").status == 201
    with pytest.raises(Forbidden):
        approve_month(INST2, "HB-0002", MONTH, {}, filing)
    with pytest.raises(Forbidden):
        approve_month(SJZ, "HB-0002", MONTH, {}, filing)  # HB-0002 is in bd
    assert return_month(BD, "HB-0002", MONTH, {"comment": " "}, filing).status == 422
    back = return_month(BD, "HB-0002", MONTH, {"comment": "热力数据请核对"}, filing, source="form")
    assert back.body == {"institution_id": "HB-0002", "month": MONTH, "status": "returned", "comment": "热力数据请核对"}
    assert [r["comment"] for r in list_submissions(BD, MONTH, filing).body["submissions"]
            if r["institution_id"] == "HB-0002"] == ["热力数据请核对"]
    fixed = body(filing)
    fixed["items"][2] = {**fixed["items"][2], "quantity": fixed["items"][2]["quantity"] * 1.1}
    assert submit(INST2, fixed, filing, source="upload").status == 201
    assert approve_month(BD, "HB-0002", MONTH, None, filing).body["status"] == "approved"
    assert approve_month(BD, "HB-0002", MONTH, None, filing).status == 422  # approved already
    locked = submit(INST2, fixed, filing)
    assert locked.status == 422 and codes(locked, "warnings") == ["REOPEN"]
    again = submit(INST2, {**fixed, "reasons": {"REOPEN": "发现账单错误"}}, filing)
    assert again.status == 201 and filing.book.get("HB-0002", MONTH)["status"] == "submitted"
    trail = audit_trail(INST2, "HB-0002", filing, MONTH)
    status = trail[trail["field"] == "status"]
    assert status[["action", "old", "new", "source"]].values.tolist() == [
        ["submit", "missing", "submitted", "form"], ["return", "submitted", "returned", "form"],
        ["submit", "returned", "submitted", "upload"], ["approve", "submitted", "approved", "api"],
        ["submit", "approved", "submitted", "api"]]
    heat = trail[(trail["energy"] == "heat") & (trail["field"] == "quantity")]
    area = filing.registry.institution_by_id["HB-0002"].floor_area_m2
    assert heat[["action", "old", "new"]].values.tolist() == [
        ["submit", None, f"{0.05 * area * 1000:g} MJ"], ["replace", f"{0.05 * area * 1000:g} MJ",
                                                          f"{0.05 * area * 1000 * 1.1:g} MJ"]]
    assert status["who"].tolist() == ["inst2", "bd", "inst2", "bd", "inst2"]
    assert status["reason"].tolist()[1] == "热力数据请核对"
    with pytest.raises(Forbidden):
        audit_trail(INST3, "HB-0002", filing)


def test_institution_user_cannot_reach_another_institution(filing):
    with pytest.raises(Forbidden):
        submit(INST3, body(filing, "HB-0002"), filing)
    with pytest.raises(Forbidden):
        prefill(INST3, "HB-0002", MONTH, filing)
    with pytest.raises(Forbidden):
        submit(INST3, {**body(filing), "institution_id": "HB-9999"}, filing)  # unknown ids: refused the same way
    assert [r["institution_id"] for r in list_submissions(INST3, MONTH, filing).body["submissions"]] == ["HB-0003"]
    assert filing.book.statuses().empty


def test_prefill_shows_meters_read_only_and_last_years_items(filing):
    got = prefill(ADMIN, "HB-0001", MONTH, filing).set_index("energy")
    assert got.loc["electricity", "metered"] and got.loc["electricity", "quantity"] == pytest.approx(10.0 * 24 * 30)
    assert got.loc["electricity", "estimated_share"] == 0.0
    assert not got.loc["heat", "metered"] and pd.isna(got.loc["heat", "quantity"])
    assert got.loc["heat", "last_year_c"] == pytest.approx(0.05 * 10000)
    submit(ADMIN, {"institution_id": "HB-0001", "month": MONTH,
                   "items": [{"energy": "heat", "quantity": 520, "unit": "GJ", "cost_cny": 26000},
                             {"energy": "water", "quantity": 0.3, "unit": "t", "cost_cny": 1.2}],
                   "reasons": {"YOY_CHANGE": "x"}}, filing)
    again = prefill(ADMIN, "HB-0001", MONTH, filing).set_index("energy")
    assert again.loc["heat", "quantity"] == 520 and again.loc["heat", "cost_cny"] == 26000
