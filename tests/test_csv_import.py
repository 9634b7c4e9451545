"""`civicwatt import` / `export`: all-or-nothing imports with every problem listed."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.cli import main
from civicwatt.sample import write_sample
from core.csvio import parse_readings
from core.registry import load_registry
from core.yamlfile import ConfigError
from storage import open_store


@pytest.fixture
def site(tmp_path):
    write_sample(tmp_path, n_institutions=2)
    return tmp_path


def run(site, store_url, *argv):
    return main([*argv[:2], "--registry", str(site / "civicwatt.yaml"), "--store", store_url, *argv[2:]])


GOOD = """meter_id,time,value
HB-0001-E0,2025-01-01T00:00:00+08:00,100.0
HB-0001-E0,2025-01-01T01:00:00+08:00,101.5
HB-0001-E0,2025-01-02T00:00:00+08:00,130.25
HB-0001-W0,2025-01-01T00:00:00Z,7
"""

BAD = """meter_id,time,value
HB-0001-E0,2025-01-01T00:00:00+08:00,100.0
HB-9999-E0,2025-01-01T01:00:00+08:00,101.5
HB-0001-E0,yesterday,102
HB-0001-E0,2025-01-01T03:00:00+08:00,-4
HB-0001-E0,2025-01-01T04:00:00+08:00,abc
HB-0001-E0,2025-01-01T00:00:00+08:00,99.0
HB-0001-E0,2025-01-01T05:00:00,106
"""


def test_bad_csv_lists_every_problem_and_writes_nothing(site, tmp_path, capsys):
    url = f"embedded:{tmp_path / 'data'}"
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(tmp_path / "good.csv")) == 0
    db = tmp_path / "data" / "civicwatt.sqlite3"
    store = open_store(url)
    before = store.read_samples()
    store.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()

    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(bad)) == 1
    err = capsys.readouterr().err
    for expected in [f"{bad}:3: meter_id: unknown meter 'HB-9999-E0'",
                     f"{bad}:4: time: 'yesterday' is not an ISO 8601 time",
                     f"{bad}:5: value: must not be negative",
                     f"{bad}:6: value: 'abc' is not a number",
                     f"{bad}:2: value: duplicate of another line with a different value",
                     f"{bad}:7: value: duplicate of another line with a different value",
                     f"{bad}:8: time: has no UTC offset"]:
        assert expected in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # byte-for-byte unchanged
    store = open_store(url)
    pd.testing.assert_frame_equal(before, store.read_samples())
    store.close()


def test_conflict_with_stored_value_is_rejected(site, tmp_path, capsys, influxd):
    url = influxd.url("csvconflict")
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    assert run(site, url, "import", "readings", str(good)) == 0
    changed = tmp_path / "changed.csv"
    changed.write_text(GOOD.replace("101.5", "101.7") + "HB-0002-E0,2025-01-01T00:00:00+08:00,5\n", encoding="utf-8")
    assert run(site, url, "import", "readings", str(changed)) == 1
    assert "value 101.7 differs from the stored 101.5" in capsys.readouterr().err
    store = open_store(url)
    got = store.read_samples()
    store.close()
    assert sorted(got["meter_id"].unique()) == ["HB-0001-E0", "HB-0001-W0"]
    assert got["value"].tolist() == [100.0, 101.5, 130.25, 7.0]


def test_export_import_round_trip(site, tmp_path):
    src = f"embedded:{tmp_path / 'a'}"
    dst = f"embedded:{tmp_path / 'b'}"
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, src, "import", "readings", str(tmp_path / "good.csv")) == 0
    out = tmp_path / "export.csv"
    assert run(site, src, "export", "readings", "--start", "2024-12-31", "--end", "2025-01-02", "--out", str(out)) == 0
    assert run(site, dst, "import", "readings", str(out)) == 0
    a, b = open_store(src), open_store(dst)
    pd.testing.assert_frame_equal(a.read_samples()[["meter_id", "time", "value"]],
                                  b.read_samples()[["meter_id", "time", "value"]])
    cons = tmp_path / "cons.csv"
    assert run(site, src, "export", "consumption", "--freq", "day", "--start", "2025-01-01", "--end", "2025-01-01",
               "--out", str(cons)) == 0
    got = pd.read_csv(cons)
    assert list(got.columns) == ["meter_id", "period_start", "quantity", "unit", "estimated_share"]
    e0 = got[got["meter_id"] == "HB-0001-E0"]
    assert e0["quantity"].tolist() == [30.25 * 80]  # sample main meter has a CT multiplier of 80
    assert e0["unit"].tolist() == ["kWh"] and e0["period_start"].tolist() == ["2025-01-01T00:00:00+08:00"]


def test_bills_import_validation(site, tmp_path, capsys):
    url = f"embedded:{tmp_path / 'data'}"
    bills = tmp_path / "bills.csv"
    bills.write_text("institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
                     "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n"
                     "HB-0404,diesel,2025-01-01,2025-01-31,300,L,2100\n"
                     "HB-0001,gasoline,2025-02-01,2025-01-31,300,m3,\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 1
    err = capsys.readouterr().err
    assert f"{bills}:3: institution_id: unknown institution 'HB-0404'" in err
    assert f"{bills}:4: period_end: is before period_start" in err
    assert f"{bills}:4: unit: unit 'm3' does not fit energy 'gasoline'" in err
    store = open_store(url)
    assert store.read_bills().empty
    store.close()
    bills.write_text("institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
                     "HB-0001,diesel,2025-01-01,2025-01-31,300,L,2100\n", encoding="utf-8")
    assert run(site, url, "import", "bills", str(bills)) == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["HB-0001-E0", "HB-0001-W0", "nope", ""]),
                          st.integers(min_value=0, max_value=10**9),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))),
                min_size=1, max_size=20))
def test_parser_accepts_exactly_the_valid_rows(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("p")
    write_sample(d, n_institutions=1)
    registry = load_registry(d / "civicwatt.yaml")
    lines = ["meter_id,time,value"]
    for meter, t, value in rows:
        stamp = pd.Timestamp(t, unit="s", tz="UTC").tz_convert("Asia/Shanghai").isoformat()
        lines.append(f"{meter},{stamp},{str(value).replace(',', ';')}")
    path = d / "r.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def valid(meter, value):
        try:
            x = float(str(value).replace(",", ";"))
        except ValueError:
            return False
        return meter in registry.meter_by_id and x >= 0 and x != float("inf")

    keys = {}
    conflict = False
    for meter, t, value in rows:
        if valid(meter, value):
            x = float(str(value))
            conflict |= keys.setdefault((meter, t), x) != x
    expect_ok = all(valid(m, v) for m, _, v in rows) and not conflict
    try:
        out = parse_readings(path, registry)
    except ConfigError as exc:
        assert not expect_ok, exc
        assert all(p.line >= 2 for p in exc.problems)
    else:
        assert expect_ok
        assert len(out) == len(keys)


def test_malformed_registry_writes_nothing(site, tmp_path, capsys):
    reg = site / "civicwatt.yaml"
    reg.write_text(reg.read_text(encoding="utf-8").replace("region: sjz", "region: atlantis", 1), encoding="utf-8")
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run(site, f"embedded:{tmp_path / 'never'}", "import", "readings", str(tmp_path / "good.csv")) == 1
    err = capsys.readouterr().err
    assert "unknown region 'atlantis'" in err and f"{reg}:" in err
    assert not (tmp_path / "never").exists()  # the store was never opened
