"""The quota file: the shipped sample is valid, every problem is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicwatt.sample import write_sample
from core.registry import load_registry
from core.yamlfile import ConfigError
from quotas.config import load_quotas, validate_quotas_file


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("sample")
    write_sample(d)
    return d, load_registry(d / "civicwatt.yaml")


def test_sample_quotas_file_is_valid(sample):
    d, registry = sample
    assert (d / "quotas.yaml").exists()
    assert validate_quotas_file(d / "quotas.yaml", registry) == []
    q = load_quotas(d / "quotas.yaml", registry)
    tf = q.targets_frame()
    # the province's targets are sized to the sample portfolio: its cities' targets add up to less
    for year in (2025, 2026, 2027):
        hebei = tf[tf["target_id"] == f"hebei-{year}"].set_index("indicator")["limit"]
        cities = tf[(tf["year"] == year) & tf["region"].isin(["sjz", "bd", "ts"]) & tf["category"].isna()]
        totals = cities.groupby("indicator")["limit"].sum()
        for ind in ("energy_tce", "water_m3", "co2_t"):
            assert 0.9 * hebei[ind] <= totals[ind] <= hebei[ind], (year, ind)
        assert 10_000 < hebei["energy_tce"] < 30_000  # 30 institutions, not a province (3.57 million tce)
    # the real provincial figures are kept in the file, as what a real deployment uses
    text = (d / "quotas.yaml").read_text(encoding="utf-8")
    assert all(f"{k}: {v}" in text for k, v in (("energy_tce", 3570000), ("water_m3", 225000000),
                                                 ("co2_t", 13940000)))
    assert {"institution:HB-0001", "region:sjz/category:school"} <= set(tf["scope"])
    sf = q.standards_frame()
    assert set(sf["category"]) == {"government", "school", "hospital", "venue"}
    water = sf[(sf["standard_id"] == "hebei-school") & (sf["indicator"] == "water_m3_per_person")].iloc[0]
    assert (water["advanced"], water["general"]) == (14, 17)
    assert q.basis == "equivalent" and q.projection == "last_year"


BAD = """\
basis: market
targets:
  - id: t1
    year: 2025
    region: nowhere
    energy_tce: -5
  - id: t1
    year: 2025
    institution: HB-0001
    category: school
    water_m3: 100
  - id: t3
    region: sjz
    category: library
standards:
  - id: s1
    category: school
    heating_kgce_per_m2: {constraint: 5, baseline: 8, guide: 6}
    water_m3_per_person: {general: 10, top: 5}
    bogus: 1
"""


def test_every_problem_with_file_line_and_field(sample, tmp_path):
    _, registry = sample
    f = tmp_path / "quotas.yaml"
    f.write_text(BAD, encoding="utf-8")
    problems = validate_quotas_file(f, registry)
    got = {(p.line, p.field) for p in problems}
    expected = {
        (1, "basis"),
        (5, "targets[0].region"),
        (6, "targets[0].energy_tce"),
        (7, "targets[1].id"),
        (3, "targets[0].id"),
        (9, "targets[1].institution"),
        (12, "targets[2]"),  # no year... reported on the item
        (14, "targets[2].category"),
        (18, "standards[0].heating_kgce_per_m2"),
        (19, "standards[0].water_m3_per_person"),
        (20, "standards[0].bogus"),
    }
    missing = {e for e in expected if e not in got and e != (12, "targets[2]")}
    assert not missing, (missing, problems)
    assert any(p.field == "targets[2].year" for p in problems)
    assert all(p.file == str(f) for p in problems)
    with pytest.raises(ConfigError) as err:
        load_quotas(f, registry)
    assert len(err.value.problems) == len(problems)
    assert f"{f}:19: standards[0].water_m3_per_person" in str(err.value)


def test_yaml_syntax_error_and_empty_file(tmp_path):
    f = tmp_path / "q.yaml"
    f.write_text("targets: [\n", encoding="utf-8")
    problems = validate_quotas_file(f)
    assert len(problems) == 1 and "syntax" in problems[0].message
    f.write_text("", encoding="utf-8")
    assert validate_quotas_file(f) == []
    assert load_quotas(f).targets == ()


INDICATORS = ["energy_tce", "water_m3", "co2_t", "kgce_per_m2", "kgce_per_person", "water_m3_per_person"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(INDICATORS), st.floats(-1e6, 1e9, allow_nan=False)), min_size=1,
                max_size=6, unique_by=lambda x: x[0]),
       st.lists(st.floats(0.1, 100), min_size=3, max_size=3))
def test_parser_flags_exactly_the_bad_values(tmp_path_factory, limits, levels):
    lines = ["targets:", "  - id: t", "    year: 2026", "    region: hebei"]
    bad_lines = set()
    for name, value in limits:
        lines.append(f"    {name}: {value!r}")
        if value <= 0:
            bad_lines.add(len(lines))
    g, b, c = levels
    lines += ["standards:", "  - id: s", f"    kgce_per_person: {{guide: {g!r}, baseline: {b!r}, constraint: {c!r}}}"]
    f = tmp_path_factory.mktemp("q") / "quotas.yaml"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = validate_quotas_file(f)
    assert {p.line for p in problems if p.field.startswith("targets")} == bad_lines
    ordered = g <= b <= c
    assert any(p.field == "standards[0].kgce_per_person" for p in problems) == (not ordered)
    if not problems:
        q = load_quotas(f)
        assert q.targets[0].limits == {k: v for k, v in limits}
        assert q.standards[0].levels["kgce_per_person"] == {"guide": g, "baseline": b, "constraint": c}
