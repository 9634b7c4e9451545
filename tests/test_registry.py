"""Registry loading and `civicwatt check-config` / `civicwatt init`."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from civicwatt.cli import main
from civicwatt.sample import sample_registry_doc, write_sample
from core.registry import load_registry
from core.yamlfile import ConfigError

BAD_REGISTRY = textwrap.dedent("""\
    timezone: Asia/Shanghai
    regions:
      - {id: hebei, name: 河北省}
      - {id: sjz, name: 石家庄市, parent: nowhere}
    institutions:
      - id: HB-0001
        name: 省直某厅
        region: sjz
        category: government
        floor_area_m2: -5
        occupants: 10
      - id: HB-0001
        name: twin
        region: mars
        category: school
        floor_area_m2: 100
        occupants: 3
    meters:
      - id: M1
        institution: HB-0001
        energy: electricity
        parent: M2
      - id: M2
        institution: HB-0001
        energy: electricity
        parent: M1
      - id: M3
        institution: HB-0404
        energy: plasma
      - id: M4
        institution: HB-0001
        energy: water
        modbus: {port: 15020, unit: 1, profile: nosuchmeter}
""")


def test_every_problem_is_listed_with_line_and_field(tmp_path):
    path = tmp_path / "civicwatt.yaml"
    path.write_text(BAD_REGISTRY, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    found = {(p.line, p.field) for p in info.value.problems}
    assert (4, "regions[1].parent") in found  # unknown region
    assert (10, "institutions[0].floor_area_m2") in found  # negative area
    assert (6, "institutions[0].id") in found and (12, "institutions[1].id") in found  # duplicate id
    assert (14, "institutions[1].region") in found  # unknown region
    assert (22, "meters[0].parent") in found and (26, "meters[1].parent") in found  # sub-meter loop
    assert (29, "meters[2].energy") in found  # unknown energy
    assert (28, "meters[2].institution") in found  # meter of a missing institution
    assert (31, "meters[3].institution") not in found
    assert (33, "meters[3].modbus.profile") in found  # unknown profile
    messages = " ".join(p.message for p in info.value.problems)
    assert "loop" in messages and "nosuchmeter" in messages and "duplicate id 'HB-0001'" in messages
    assert all(str(path) == p.file for p in info.value.problems)


def test_meter_of_missing_institution(tmp_path):
    doc = sample_registry_doc(n_institutions=2)
    doc["meters"][3]["institution"] = "HB-9999"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    problems = [p for p in info.value.problems if p.field == "meters[3].institution"]
    assert len(problems) == 1 and "HB-9999" in problems[0].message
    line = path.read_text(encoding="utf-8").splitlines()[problems[0].line - 1]
    assert "HB-9999" in line  # the reported line is the one with the bad value


def test_check_config_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_REGISTRY, encoding="utf-8")
    assert main(["check-config", "--registry", str(bad), "--quotas", str(tmp_path / "none.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4: regions[1].parent: unknown region 'nowhere'" in err
    assert "problem(s) found" in err

    assert main(["init", str(tmp_path / "site")]) == 0
    good = tmp_path / "site" / "civicwatt.yaml"
    assert good.read_text(encoding="utf-8").startswith("# CivicWatt registry")
    assert main(["check-config", "--registry", str(good), "--quotas", str(tmp_path / "none.yaml")]) == 0


def test_sample_portfolio_shape():
    registry = load_registry_from_doc(sample_registry_doc())
    cats = {i.category for i in registry.institutions}
    assert len(registry.institutions) == 30 and cats == {"government", "school", "hospital", "venue"}
    energies = {m.energy for m in registry.meters}
    assert {"electricity", "water", "natural_gas"} <= energies
    subs = [m for m in registry.meters if m.parent]
    assert subs and all(registry.meter_by_id[m.parent].subitem == "total" for m in subs)
    assert registry.region_subtree("hebei") == {"hebei", "sjz", "bd", "ts"}
    assert registry.heating_season_of("sjz").start == "11-15"  # inherited from hebei


def load_registry_from_doc(doc):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    write_sample(d)
    p = d / "civicwatt.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_registry(p)


def test_impossible_date_is_reported_with_its_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("timezone: Asia/Shanghai\nregions:\n  - {id: a, name: A}\nbuilt: 2024-11-31\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert [(p.line, p.field) for p in info.value.problems] == [(4, "-")]
    assert info.value.problems[0].message == "not a valid date: 2024-11-31"


def test_lists_and_mappings_are_checked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("regions: oops\ninstitutions: []\nmeters:\n  - 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert [(p.line, p.field, p.message) for p in info.value.problems] == [
        (1, "regions", "must be a list"), (3, "meters[0]", "must be a mapping")]


def test_region_tree_is_walked_the_same_from_every_form():
    """The one walk (`region_chain`) serves the Registry, an id/parent frame and a dict alike;
    it stops at an unknown parent and at a loop instead of running forever."""
    import pandas as pd

    from core.registry import Region, Registry, region_ancestors_frame, region_chain, region_parents

    reg = Registry(regions=(Region(id="cn", name="中国"), Region(id="hebei", name="河北省", parent="cn"),
                            Region(id="sjz", name="石家庄市", parent="hebei")))
    as_dict = {"cn": None, "hebei": "cn", "sjz": "hebei"}
    as_frame = pd.DataFrame({"id": ["cn", "hebei", "sjz"], "parent": [None, "cn", "hebei"]})
    assert region_parents(reg) == region_parents(as_frame) == as_dict and region_parents(None) == {}
    assert reg.region_ancestors("sjz") == region_chain("sjz", as_dict) == ["sjz", "hebei", "cn"]
    assert reg.region_subtree("hebei") == {"hebei", "sjz"}
    assert region_chain("mars", as_dict) == ["mars"]  # unknown: itself only
    assert region_chain("a", {"a": "b", "b": "a"}) == ["a", "b"]  # a loop is walked once
    for tree in (reg, as_dict, as_frame):
        pairs = region_ancestors_frame(["sjz", "cn"], tree)
        assert list(pairs.itertuples(index=False, name=None)) == [
            ("sjz", "sjz", 0), ("sjz", "hebei", 1), ("sjz", "cn", 2), ("cn", "cn", 0)]
    assert region_ancestors_frame(["sjz"], None).values.tolist() == [["sjz", "sjz", 0]]


# -- hardening (issue 15): ranges, types and encodings of the registry --------------------------------

def _sample_text(tmp_path):
    write_sample(tmp_path, n_institutions=2)
    return (tmp_path / "civicwatt.yaml").read_text(encoding="utf-8")


def _problems(path):
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    return info.value.problems


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ("floor_area_m2: ", "floor_area_m2: .inf #", "institutions[0].floor_area_m2", "Input should be a finite number, not inf"),
    ("heated_area_m2: ", "heated_area_m2: .nan #", "institutions[0].heated_area_m2", "Input should be a finite number, not nan"),
    ("occupants: ", "occupants: yes #", "institutions[0].occupants", "Input should be a valid integer, not True"),
    ("occupants: ", "occupants: 12.5 #", "institutions[0].occupants", "Input should be a valid integer, not 12.5"),
    ("occupants: ", "occupants: 99999999999999999999 #", "institutions[0].occupants", "Input should be less than or equal to 10000000, not 99999999999999999999"),
    ("start: 11-15", "start: 02-30", "regions[0].heating_season.start", "'02-30' is not a day of the year (MM-DD)"),
    ("end: 03-15", "end: 13-01", "regions[0].heating_season.end", "'13-01' is not a day of the year (MM-DD)"),
    ("multiplier: 80.0", "multiplier: .inf", "meters[0].multiplier", "Input should be a finite number, not inf"),
    ("unit: 1\n", "unit: true\n", "meters[0].modbus.unit", "Input should be a valid integer, not True"),
    ("port: 15020", "port: 99999999", "meters[0].modbus.port", "Input should be less than or equal to 65535, not 99999999"),
])
def test_out_of_range_values_are_located(tmp_path, old, new, field, message):
    text = _sample_text(tmp_path)
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    problems = _problems(path)
    assert [(p.field, p.message) for p in problems] == [(field, message)]
    assert text.replace(old, new, 1).splitlines()[problems[0].line - 1].strip().startswith(new.split(":")[0].strip())


def test_feb_29_is_a_day_of_the_year(tmp_path):
    text = _sample_text(tmp_path).replace("end: 03-15", "end: 02-29", 1)
    (tmp_path / "ok.yaml").write_text(text, encoding="utf-8")
    assert load_registry(tmp_path / "ok.yaml").region_by_id["hebei"].heating_season.end == "02-29"


def test_top_level_heating_season_is_located(tmp_path):
    text = _sample_text(tmp_path).replace("regions:", "heating_season: {start: 11-31, end: 03-15}\nregions:", 1)
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    [problem] = _problems(tmp_path / "bad.yaml")
    line = text.splitlines().index("heating_season: {start: 11-31, end: 03-15}") + 1
    assert (problem.line, problem.field, problem.message) == (line, "heating_season.start",
                                                              "'11-31' is not a day of the year (MM-DD)")


def test_invalid_parent_meter_is_no_key_error(tmp_path):
    """A main meter that fails its own validation (port 99999999) made its sub-meters'
    parent check raise KeyError; now only the bad port is reported."""
    text = _sample_text(tmp_path)
    assert "parent: HB-0001-E0" in text
    (tmp_path / "bad.yaml").write_text(text.replace("port: 15020", "port: 99999999", 1), encoding="utf-8")
    assert [p.field for p in _problems(tmp_path / "bad.yaml")] == ["meters[0].modbus.port"]


@pytest.mark.parametrize(("encoding", "line"), [("latin-1", 3), ("utf-16", 1), ("gb18030", 3)])
def test_registry_not_in_utf8_is_a_clean_error(tmp_path, encoding, line):
    path = tmp_path / "r.yaml"
    path.write_bytes("timezone: Asia/Shanghai\nregions:\n  - {id: a, name: Zürich}\n".encode(encoding))
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), line, "-")
    assert problem.message.startswith("not UTF-8")


def test_echoed_references_are_cut_to_80_characters(tmp_path):
    text = _sample_text(tmp_path).replace("region: sjz", "region: " + "x" * 5000, 1)
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    [problem] = _problems(tmp_path / "bad.yaml")
    assert problem.message == f"unknown region '{'x' * 80}…'"


def test_submission_settings_are_checked_with_their_lines(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("timezone: Asia/Shanghai\nsubmissions:\n  deadline_day: 31\n  reminder_days: [10, x]\n"
                    "regions:\n  - {id: a, name: A}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert [(p.line, p.field) for p in info.value.problems] == [(3, "submissions.deadline_day"),
                                                                (4, "submissions.reminder_days[1]")]
    path.write_text("submissions: {deadline_day: 20}\nregions:\n  - {id: a, name: A}\n", encoding="utf-8")
    settings = load_registry(path).submissions
    assert (settings.deadline_day, settings.reminder_days) == (20, (10, 14))
    path.write_text("submissions: 5\nregions:\n  - {id: a, name: A}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert [(p.line, p.field) for p in info.value.problems] == [(1, "submissions")]
