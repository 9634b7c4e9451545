"""`civicwatt national` on a real Dask LocalCluster (2 worker processes) over a synthetic
three-province dataset: the distributed result equals the single-process computation on
the same files through the same models functions, the aggregates are ratios of sums, the
rankings stay inside province and category, targets are evaluated, and bad datasets give
clean errors naming the file (also when the error happens on a worker)."""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from civicwatt.cli import main
from national.compute import LOCAL_CLUSTER, national_tables, national_tables_local
from national.dataset import open_catalog
from tests.support_national import build_dataset

PROVINCES = {"hebei": 36, "beijing": 24, "xizang": 18}  # xizang: not in the factor set, national factors
MONTHS = ["2024-01", "2024-02", "2024-03", "2024-11", "2024-12", "2025-01"]
RTOL = 1e-9
QUOTAS = textwrap.dedent("""\
    basis: equivalent
    targets:
      - {id: cn-2024, year: 2024, region: national, energy_tce: 4000, kgce_per_m2: 4.0}
      - {id: hebei-schools, year: 2024, region: hebei, category: school, water_m3: 1.0e9}
""")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(**LOCAL_CLUSTER, silence_logs=40) as c, Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("national") / "dataset"
    build_dataset(root, PROVINCES, MONTHS)
    quotas = root.parent / "national-quotas.yaml"
    quotas.write_text(QUOTAS, encoding="utf-8")
    return root, quotas


@pytest.fixture(scope="module")
def both(cluster, dataset):
    from quotas.config import load_quotas

    root, qpath = dataset
    catalog = open_catalog(root)
    from national.compute import national_regions

    quotas = load_quotas(qpath, national_regions(PROVINCES))
    return (national_tables(catalog, 2024, cluster[1], quotas=quotas),
            national_tables_local(catalog, 2024, quotas=quotas))


def test_dask_equals_single_process(both):
    dist, local = both
    for name in ("institutions", "categories", "provinces", "total", "targets"):
        a, b = getattr(dist, name), getattr(local, name)
        assert len(a) and list(a.columns) == list(b.columns), name
        pd.testing.assert_frame_equal(a, b, rtol=RTOL, atol=0, check_dtype=False, obj=name)
    assert len(dist.institutions) == sum(PROVINCES.values())
    assert dist.as_of == "2025-01-01"  # data to the end of December


def test_aggregates_are_ratios_of_sums_over_institutions_with_data(both):
    ind = both[0].institutions
    assert (~ind["has_data"]).any()  # some institutions have no data in the year
    total = both[0].total.iloc[0]
    has = ind["has_data"]
    assert total["kgce"] == pytest.approx(ind["kgce"].sum(), rel=RTOL)
    assert total["kgce_per_m2"] == pytest.approx(ind["kgce"].sum() / ind.loc[has, "floor_area_m2"].sum(), rel=RTOL)
    assert total["kgce_per_m2"] != pytest.approx(ind["kgce_per_m2"].mean(), rel=1e-3)  # not a mean of ratios
    occ = ind.loc[has, "occupants"].sum()
    assert total["water_m3_per_person"] == pytest.approx(ind["water_m3"].sum() / occ, rel=RTOL)
    prov = both[0].provinces.set_index("province")
    assert prov["t_co2"].sum() == pytest.approx(total["t_co2"], rel=RTOL)
    assert prov.loc["hebei", "months"] == 5 and prov.loc["hebei", "last_month"] == "2024-12"
    # Hebei's electricity carries the Hebei grid factor, Tibet's the national one (same year).
    e = ind.groupby("province")[["kgco2_scope2", "electricity_kwh", "heat_gj"]].sum()
    grid = (e["kgco2_scope2"] - 110.0 * e["heat_gj"]) / e["electricity_kwh"]
    assert grid["hebei"] == pytest.approx(0.7252, rel=1e-9)  # latest published (2022), provisional
    assert grid["xizang"] == pytest.approx(0.5306, rel=1e-9)


def test_rankings_within_province_and_category(both):
    ind = both[0].institutions
    for (_p, _c), g in ind.groupby(["province", "category"]):
        ranked = g[g["rank_kgce_per_m2"].notna()]
        assert (g["peers_kgce_per_m2"][ranked.index] == len(ranked)).all()
        order = ranked.sort_values("kgce_per_m2")
        assert order["rank_kgce_per_m2"].is_monotonic_increasing
        assert order["rank_kgce_per_m2"].iloc[0] == 1
    zero_occ = ind["has_data"] & (ind["occupants"] == 0)
    assert zero_occ.any() and ind.loc[zero_occ, "rank_kgce_per_person"].isna().all()


def test_targets_against_national_totals(both):
    dist = both[0]
    t = dist.targets.set_index(["target_id", "indicator"])
    total = dist.total.iloc[0]
    assert t.loc[("cn-2024", "energy_tce"), "actual"] == pytest.approx(total["tce"], rel=RTOL)
    assert t.loc[("cn-2024", "kgce_per_m2"), "actual"] == pytest.approx(total["kgce_per_m2"], rel=RTOL)
    assert t.loc[("cn-2024", "energy_tce"), "status"] == ("breach" if total["tce"] > 4000 else "ok")
    schools = dist.categories.set_index(["province", "category"]).loc[("hebei", "school")]
    assert t.loc[("hebei-schools", "water_m3"), "actual"] == pytest.approx(schools["water_m3"], rel=RTOL)
    assert t.loc[("hebei-schools", "water_m3"), "status"] == "ok"


def test_cli_on_an_existing_cluster_csv_and_xlsx(cluster, dataset, both, tmp_path, capsys):
    root, qpath = dataset
    address = cluster[0].scheduler_address
    out_csv, out_xlsx = tmp_path / "nation.csv", tmp_path / "nation.xlsx"
    args = ["national", "--dataset", str(root), "--year", "2024", "--scheduler", address, "--quotas", str(qpath)]
    assert main([*args, "--out", str(out_csv)]) == 0
    assert main([*args, "--out", str(out_xlsx)]) == 0
    printed = capsys.readouterr().out
    assert "3 provinces" in printed and "on 2 Dask worker(s)" in printed and "target cn-2024" in printed
    rows = pd.read_csv(out_csv, encoding="utf-8-sig")
    assert rows["level"].value_counts().to_dict() == {"institution": 78, "category": len(both[1].categories),
                                                      "province": 3, "national": 1}
    nat = rows[rows["level"] == "national"].iloc[0]
    assert nat["kgce"] == pytest.approx(both[1].total["kgce"].iloc[0], rel=1e-6)
    wb = openpyxl.load_workbook(out_xlsx, read_only=True)
    assert wb.sheetnames == ["total", "provinces", "categories", "institutions", "targets"]
    sheet = list(wb["provinces"].iter_rows(values_only=True))
    prov = pd.DataFrame(sheet[3:], columns=sheet[1]).set_index("province")
    expect = both[1].provinces.set_index("province")
    assert np.allclose(prov["tce"].astype(float), expect.loc[prov.index, "tce"], rtol=RTOL)


def test_cli_starts_its_own_local_cluster_by_default(dataset, both, tmp_path, capsys):
    out = tmp_path / "nation.csv"
    assert main(["national", "--dataset", str(dataset[0]), "--year", "2024", "--out", str(out)]) == 0
    assert "on 2 Dask worker(s)" in capsys.readouterr().out
    rows = pd.read_csv(out, encoding="utf-8-sig")
    inst = rows[rows["level"] == "institution"].set_index("institution_id")
    expect = both[1].institutions.set_index("institution_id")
    assert np.allclose(inst.loc[expect.index, "kgce"], expect["kgce"], rtol=1e-6)
    assert (inst.loc[expect.index, "rank_kgce_per_m2"].astype("Int64").fillna(-1).to_numpy()
            == expect["rank_kgce_per_m2"].fillna(-1).astype(int).to_numpy()).all()


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_bad_datasets_are_clean_errors(cluster, dataset, tmp_path, capsys):
    root, _ = dataset
    address = cluster[0].scheduler_address
    out = str(tmp_path / "x.csv")

    def national(path, year="2024"):
        return _run(["national", "--dataset", str(path), "--year", year, "--out", out, "--scheduler", address],
                    capsys)

    code, err = national(tmp_path / "nowhere")
    assert code == 1 and "nowhere" in err and "no such dataset directory" in err
    (tmp_path / "empty").mkdir()
    code, err = national(tmp_path / "empty")
    assert code == 1 and "no province partitions found" in err
    code, err = national(root, "2019")
    assert code == 1 and "no month of 2019" in err and "2024, 2025" in err

    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    part = bad / "province=beijing" / "year=2024" / "month=11" / "part-0.parquet"
    good = part.read_bytes()
    part.write_bytes(good[: len(good) // 2])  # a half-copied file
    code, err = national(bad)
    assert code == 1 and str(part) in err and "sha256" in err and "does not match" in err
    manifest = bad / "province=beijing" / "manifest.json"
    doc = json.loads(manifest.read_text())
    december = bad / "province=beijing" / "year=2024" / "month=12" / "part-0.parquet"
    part.write_bytes(december.read_bytes())  # December's file in November's place, manifest updated to match
    doc["months"]["2024-11"].update(sha256=doc["months"]["2024-12"]["sha256"], rows=doc["months"]["2024-12"]["rows"])
    manifest.write_text(json.dumps(doc))
    code, err = national(bad)
    assert code == 1 and f"{part}:0: day: days 2024-12-01..2024-12-31 outside 2024-11" in err
    part.write_bytes(good[: len(good) // 2])
    doc["months"]["2024-11"]["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()  # checksum of the garbage
    manifest.write_text(json.dumps(doc))
    code, err = national(bad)  # the worker reads it: the error comes back naming the file
    assert code == 1 and str(part) in err and "not a readable Parquet file" in err
    pq.write_table(pa.table({"institution_id": ["x"], "day": [1]}), part)  # Parquet, but not a month file
    doc["months"]["2024-11"].update(sha256=hashlib.sha256(part.read_bytes()).hexdigest(), rows=1)
    manifest.write_text(json.dumps(doc))
    code, err = national(bad)
    assert code == 1 and f"{part}:0: energy,estimated_share,heating,quantity: missing column(s)" in err
    part.unlink()
    code, err = national(bad)
    assert code == 1 and str(part) in err and "missing" in err
    manifest.write_text("{not json")
    code, err = national(bad)
    assert code == 1 and str(manifest) in err and "not a readable manifest" in err


def test_an_institution_delivered_by_two_provinces_is_refused(tmp_path):
    root = tmp_path / "dup"
    inst = build_dataset(root, {"hebei": 5}, ["2024-01"])["hebei"]
    from national.dataset import write_month
    from tests.support_national import TZ, month_use

    write_month(root, "shanxi", "2024-01", month_use(inst, "2024-01", 7), inst, timezone=TZ, factor_set="x")
    with pytest.raises(ValueError, match="delivered by several provinces"):
        national_tables_local(open_catalog(root), 2024)


def test_a_province_whose_month_is_empty_is_there_without_data(cluster, tmp_path):
    from national.dataset import write_month
    from tests.support_national import TZ, institutions, month_use

    root = tmp_path / "quiet"
    build_dataset(root, {"hebei": 8}, ["2024-05"])
    quiet = institutions("tianjin", 4, 9)
    write_month(root, "tianjin", "2024-05", month_use(quiet, "2024-05", 1).iloc[:0], quiet, timezone=TZ,
                factor_set="x")
    catalog = open_catalog(root)
    dist, local = national_tables(catalog, 2024, cluster[1]), national_tables_local(catalog, 2024)
    pd.testing.assert_frame_equal(dist.institutions, local.institutions, rtol=RTOL, check_dtype=False)
    t = dist.institutions[dist.institutions["province"] == "tianjin"]
    assert len(t) == 4 and not t["has_data"].any() and (t["kgce"] == 0).all()
    assert dist.provinces.set_index("province").loc["tianjin", "institutions_with_data"] == 0
