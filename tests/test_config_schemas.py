"""Schemas of the small config formats (profiles, gateway options, fault scripts): one
definition each, every problem located at FILE:LINE: FIELD."""

from __future__ import annotations

import pytest
import yaml

from core.profiles import PROFILES_FILE, load_profiles, parse_profiles
from core.yamlfile import ConfigError, load_yaml


def _problems(fn, path, *args):
    with pytest.raises(ConfigError) as err:
        fn(path, *args)
    return [(p.line, p.field, p.message) for p in err.value.problems]


def test_shipped_profiles_are_valid_and_unchanged_by_validation():
    assert load_profiles() == yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))


def test_profile_problems_name_line_and_field(tmp_path):
    f = tmp_path / "profiles.yaml"
    f.write_text("m1:\n  description: x\n  energy: water\n  unit: kWh\n  registers:\n"
                 "    energy: {address: 0, type: float33}\n"
                 "    flow: {address: -1, type: float32, wordorder: big}\n"
                 "m2:\n  description: y\n  energy: heat\n  unit: GJ\n  function_code: 6\n"
                 "  registers: {power: {address: 2}}\n", encoding="utf-8")
    got = {(line, field): msg for line, field, msg in _problems(lambda p: parse_profiles(load_yaml(p), str(p)), f)}
    assert set(got) == {(6, "m1.registers.energy.type"), (7, "m1.registers.flow.address"),
                        (7, "m1.registers.flow.wordorder"), (12, "m2.function_code")}
    assert "'float33'" in got[(6, "m1.registers.energy.type")]
    f.write_text("m1:\n  description: x\n  energy: water\n  unit: kWh\n  registers: {energy: {address: 0}}\n"
                 "m2:\n  description: y\n  energy: heat\n  unit: GJ\n  registers: {power: {address: 2}}\n")
    assert _problems(lambda p: parse_profiles(load_yaml(p), str(p)), f) == [
        (2, "m1", "the index of water is in m3, not kWh"),
        (7, "m2", "a profile needs an `energy` register (the cumulative index)")]


def test_gateway_options_have_one_definition(tmp_path):
    from civicwatt.commands.collect import load_gateway_options
    from collectors.poller import GatewayOptions as PollerOptions
    from core.schemas.gateways import GatewayOptions

    assert PollerOptions is GatewayOptions
    f = tmp_path / "gw.yaml"
    f.write_text('"*": {retries: 2}\n"h:502": {timeout_s: 0, max_registers: 200, cycle_fraction: 1.5, '
                 'retries: 1.5, connections: true}\n"h:70000": {}\n')
    assert {(line, field) for line, field, _ in _problems(load_gateway_options, f)} == {
        (2, "h:502.timeout_s"), (2, "h:502.max_registers"), (2, "h:502.cycle_fraction"), (2, "h:502.retries"),
        (2, "h:502.connections"), (3, "h:70000")}
    f.write_text('"*": {retries: 2}\n"h:502": {max_registers: 4}\n')
    opts = {k: GatewayOptions.from_dict(v) for k, v in load_gateway_options(f).items()}
    assert opts["*"].retries == 2 and opts["*"].max_registers == 125
    assert opts["h:502"].max_registers == 4 and opts["h:502"].retries == 1  # defaults, not the "*" entry


def test_fault_script_checks_targets_kinds_and_parameters(tmp_path):
    from civicwatt.commands.simulate import load_fault_script

    f = tmp_path / "faults.yaml"
    f.write_text("- {gateway: 15021, kind: offline}\n- {gateway: 99999, kind: hang}\n- {kind: slow}\n"
                 "- {meter: M1, gateway: 15021, kind: hang}\n- {meter: M1, kind: exception, code: 4.5}\n"
                 "- {meter: M1, kind: spike, amount: .inf}\n- {meter: M1, kind: slow, when: now}\n- oops\n")
    assert [(line, field) for line, field, _ in _problems(load_fault_script, f, {"M1"})] == [
        (1, "[0].kind"), (2, "[1].gateway"), (3, "[2]"), (4, "[3]"), (5, "[4].code"), (6, "[5].amount"),
        (7, "[6].when"), (8, "[7]")]
    f.write_text("- {meter: M1, kind: replacement, new_index: 12.5, at_s: 120}\n- {gateway: 15021, kind: hang}\n")
    first, second = load_fault_script(f, {"M1"})
    assert (first.meter, first.kind, first.at_s, first.duration_s, first.params()) == (
        "M1", "replacement", 120.0, None, {"new_index": 12.5})
    assert (second.gateway, second.kind, second.params()) == (15021, "hang", {})


def test_factor_set_entries_are_checked_by_schema(tmp_path):
    from models.factors import load_factors

    f = tmp_path / "mine.yaml"
    f.write_text("id: mine\ngrid:\n  - {region: hebei, year: 2030, value: 7e-1}\n", encoding="utf-8")  # YAML 1.1: text
    assert load_factors(f).emission_factor("electricity", "hebei", 2030).value == 0.7
    f.write_text("grid:\n  - {region: hebei, year: 2030, value: .inf}\n  - {region: hebei, value: 1, valeu: 2}\n"
                 "conversion:\n  - {energy: heat, basis: market, value: 1}\nemission:\n  - {energy: coal, scope: 3, value: 1}\n")
    assert {(line, field) for line, field, _ in _problems(load_factors, f)} == {
        (2, "grid[0].value"), (3, "grid[1].year"), (3, "grid[1].valeu"), (5, "conversion[0].basis"),
        (7, "emission[0].scope")}


def test_quota_numbers_refuse_infinity_and_booleans(tmp_path):
    from quotas.config import validate_quotas_file

    f = tmp_path / "quotas.yaml"
    f.write_text("warning_ratio: 1.5\ntargets:\n  - {id: t, year: 2026, region: r, energy_tce: .inf, water_m3: yes}\n"
                 "  - {id: 2026, year: 2026.0, region: r, co2_t: 1_000}\n", encoding="utf-8")
    assert {(p.line, p.field) for p in validate_quotas_file(f)} == {
        (1, "warning_ratio"), (3, "targets[0].energy_tce"), (3, "targets[0].water_m3"), (4, "targets[1].year")}
