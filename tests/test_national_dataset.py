"""`civicwatt national export`: a province's store becomes Parquet partitions that read back
as its own daily use frame, give the province's own indicators at national level, replace
a re-delivered month atomically, and refuse months that are not over."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicwatt.cli import main
from core.registry import load_registry
from models.api import energy_use, load_factors, year_indicators
from national.compute import national_tables_local
from national.dataset import (
    MANIFEST,
    export_month,
    month_bounds,
    open_catalog,
    parse_month,
    read_table,
    read_use_table,
    require_closed,
    use_frame,
)
from storage import open_store
from tests.support_ledger_world import build

MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    base = tmp_path_factory.mktemp("province")
    reg_path, _q, url = build(base)
    dataset = base / "dataset"
    for month in MONTHS:
        assert main(["national", "export", "--province", "hebei", "--month", month, "--dataset", str(dataset),
                     "--registry", str(reg_path), "--store", url]) == 0
    registry = load_registry(reg_path)
    store = open_store(url, tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    yield base, registry, store, dataset
    store.close()


def test_partitions_read_back_as_the_use_frame(province):
    _base, registry, store, dataset = province
    catalog = open_catalog(dataset)
    (prov,) = catalog.provinces
    assert prov.province == "hebei" and prov.name == "河北省" and [p.month for p in prov.months] == MONTHS
    for part in prov.months:
        start, end = month_bounds(part.month)
        want = energy_use(store, registry, start.date().isoformat(), end.date().isoformat(), "day")
        table = read_table(part.file)
        assert table.schema.field("quantity").type == "double" and set(table.column("unit").to_pylist()) <= {
            "kWh", "m3", "GJ", "kg"}
        got = table.to_pandas(date_as_object=False)
        key = ["institution_id", "energy", "day", "source"]
        want = want.assign(day=want["period_start"].dt.tz_localize(None)).sort_values(key).reset_index(drop=True)
        got = got.sort_values(key).reset_index(drop=True)
        assert len(got) == len(want) > 0
        for c in ("institution_id", "energy", "subitem", "source", "unit"):
            assert got[c].astype(str).tolist() == want[c].astype(str).tolist(), c
        assert (got["day"].to_numpy("datetime64[D]") == want["day"].to_numpy("datetime64[D]")).all()
        assert got["meter_id"].isna().tolist() == want["meter_id"].isna().tolist()
        np.testing.assert_allclose(got["quantity"], want["quantity"], rtol=1e-12)
        np.testing.assert_allclose(got["estimated_share"], want["estimated_share"].astype(float), rtol=1e-12)
        assert got["heating"].tolist() == want["heating"].tolist()
    assert "gasoline" in set(use_frame(read_use_table(prov.months[0]))["energy"])  # the bills are there


def test_national_figures_equal_the_provinces_own(province):
    _base, registry, store, dataset = province
    own = year_indicators(store, registry, 2024).set_index("institution_id")
    nat = national_tables_local(open_catalog(dataset), 2024)
    ind = nat.institutions.set_index("institution_id").loc[own.index]
    for c in ("kgce", "tce", "t_co2", "water_m3", "heating_kgce", "kgce_per_m2", "kgce_per_person",
              "water_m3_per_person", "kgco2_per_m2", "estimated_share"):
        np.testing.assert_allclose(ind[c].to_numpy(float), own[c].to_numpy(float), rtol=1e-9, err_msg=c)
    assert (ind["has_data"] == own["has_data"]).all()
    inst = pq.read_table(dataset / "province=hebei" / "institutions.parquet").to_pandas()
    assert sorted(inst["institution_id"]) == sorted(registry.institution_by_id)
    assert set(inst["factor_region"]) == {"hebei"} and set(inst["province"]) == {"hebei"}


def test_redelivery_replaces_the_month(province, tmp_path):
    _base, registry, store, _dataset = province
    dataset = tmp_path / "ds"
    first = export_month(store, registry, "hebei", "2024-03", dataset)
    assert export_month(store, registry, "hebei", "2024-04", dataset)["rows"] > 0
    pdir = dataset / "province=hebei"
    part = pdir / "year=2024" / "month=03" / "part-0.parquet"
    before = part.stat().st_ino
    again = export_month(store, registry, "hebei", "2024-03", dataset)
    assert again["sha256"] == first["sha256"] and again["rows"] == first["rows"]  # same data, same bytes
    assert part.stat().st_ino != before  # a new file was renamed into place
    assert sorted(p.name for p in (pdir / "year=2024").iterdir()) == ["month=03", "month=04"]  # no temp left
    assert sorted(p.name for p in (pdir / "year=2024" / "month=03").iterdir()) == ["part-0.parquet"]
    manifest = json.loads((pdir / MANIFEST).read_text())
    assert sorted(manifest["months"]) == ["2024-03", "2024-04"]
    # Only the city's institutions when the province is a city of the registry.
    export_month(store, registry, "bd", "2024-03", dataset)
    bd = pq.read_table(dataset / "province=bd" / "institutions.parquet").to_pandas()
    assert sorted(bd["institution_id"]) == ["G2", "H1"]
    assert set(pq.read_table(dataset / "province=bd/year=2024/month=03/part-0.parquet").column(
        "institution_id").to_pylist()) == {"G2"}  # H1 has a meter but no readings


def test_only_closed_months(province, tmp_path, capsys):
    _base, registry, store, _dataset = province
    require_closed("2024-02", "Asia/Shanghai", today="2024-03-01")
    with pytest.raises(ValueError, match="not a closed month"):
        require_closed("2024-03", "Asia/Shanghai", today="2024-03-31")
    with pytest.raises(ValueError, match="not a closed month"):
        export_month(store, registry, "hebei", "2024-05", tmp_path / "ds", load_factors(), today="2024-04-10")
    assert not (tmp_path / "ds").exists()  # nothing written
    base = province[0]
    common = ["--registry", str(base / "civicwatt.yaml"), "--store", f"embedded:{base / 'store'}",
              "--dataset", str(tmp_path / "cli")]
    this_month = pd.Timestamp.now(tz="Asia/Shanghai").strftime("%Y-%m")
    for month, field, message in ((this_month, "--month", "not a closed month"), ("2999-01", "--month", "closed"),
                                  ("2024-13", "--month", "YYYY-MM")):
        assert main(["national", "export", "--province", "hebei", "--month", month, *common]) == 1
        err = capsys.readouterr().err
        assert f"<command line>:0: {field}:" in err and message in err and "Traceback" not in err
    assert main(["national", "export", "--province", "nowhere", "--month", "2024-01", *common]) == 1
    assert "unknown region 'nowhere'" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


@given(st.integers(1990, 2100), st.integers(1, 12))
def test_month_parser_and_bounds(year, month):
    text = f"{year:04d}-{month:02d}"
    start, end = month_bounds(text)
    assert (start.year, start.month, start.day) == (year, month, 1)
    assert (end - start).days == pd.Period(text).days_in_month
    assert end.day == 1 and (end - pd.Timedelta(days=1)).month == month


@given(st.text(max_size=10))
def test_month_parser_refuses_anything_else(text):
    ok = len(text) == 7 and text[4] == "-" and text[:4].isascii() and text[:4].isdigit() and text[5:].isascii() \
        and text[5:].isdigit() and 1 <= int(text[5:]) <= 12
    if ok:
        assert parse_month(text) == (int(text[:4]), int(text[5:]))
    else:
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(text)


def test_institutions_of_earlier_deliveries_are_kept(tmp_path):
    from national.dataset import write_month
    from tests.support_national import TZ, institutions, month_use

    inst = institutions("hebei", 6, 3)
    write_month(tmp_path, "hebei", "2024-01", month_use(inst, "2024-01", 1), inst, timezone=TZ, factor_set="x")
    later = inst.iloc[1:].assign(floor_area_m2=inst["floor_area_m2"].iloc[1:] * 2)  # one gone, areas changed
    write_month(tmp_path, "hebei", "2024-02", month_use(later, "2024-02", 2), later, timezone=TZ, factor_set="x")
    table = pq.read_table(tmp_path / "province=hebei" / "institutions.parquet").to_pandas().set_index("institution_id")
    assert sorted(table.index) == sorted(inst["institution_id"])
    assert table.loc[later["institution_id"], "floor_area_m2"].tolist() == later["floor_area_m2"].tolist()
    nat = national_tables_local(open_catalog(tmp_path), 2024)
    gone = nat.institutions.set_index("institution_id").loc[inst["institution_id"].iloc[0]]
    assert gone["has_data"] == (inst["institution_id"].iloc[0] in set(month_use(inst, "2024-01", 1)["institution_id"]))
