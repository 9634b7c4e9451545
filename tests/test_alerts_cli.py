"""`civicwatt quotas check --notify` end to end.

Registry and quota files, a store, a channels file with a real loopback webhook and a
JSON-lines log."""

from __future__ import annotations

import json

import pytest

from civicwatt.cli import main
from tests.support_alerts_servers import WebhookServer
from tests.support_ledger_world import build


@pytest.fixture
def world(tmp_path):
    reg, _, url = build(tmp_path)
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(
        "targets:\n"
        "  - {id: g1-2024, year: 2024, institution: G1, energy_tce: 100}\n"
        "standards:\n"
        "  - {id: gov, category: government, region: hebei, water_m3_per_person: {general: 20, advanced: 12}}\n",
        encoding="utf-8")
    hook = WebhookServer().start()
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "reminder_hours: 2000\n"
        "channels:\n"
        f"  - {{name: hook, type: webhook, url: '{hook.url}'}}\n"
        "  - {name: log, type: jsonl, path: alerts.jsonl, min_severity: critical}\n", encoding="utf-8")
    yield tmp_path, ["--registry", str(reg), "--store", url, "--quotas", str(quotas), "--channels", str(channels)], hook
    hook.stop()


def test_quotas_check_notify(world, capsys):
    base, args, hook = world
    assert main(["quotas", "check", "--date", "2024-06-01", *args]) == 0  # without --notify: print only
    out = capsys.readouterr().out
    assert "projected_breach institution:G1 2024" in out and "projected_breach" in out.splitlines()[1]
    assert hook.bodies == []
    assert main(["quotas", "check", "--date", "2024-06-01", "--notify", *args]) == 0
    assert main(["quotas", "check", "--date", "2024-06-02", "--notify", *args]) == 0  # nothing new
    assert sorted(b["rule"] for b in hook.bodies) == ["projected_breach", "quota_constraint_exceeded"]
    assert main(["quotas", "check", "--date", "2024-12-01", "--notify", *args]) == 0
    out = capsys.readouterr().out
    assert "1 opened, 0 reminded, 1 resolved" in out
    seq = [(b["rule"], b["notification"]) for b in hook.bodies]
    assert seq[2:] == [("dual_control_exceeded", "open"), ("projected_breach", "resolved")]
    exceeded = hook.bodies[2]
    assert exceeded["institution_id"] == "G1" and exceeded["limit"] == 100 and exceeded["actual"] > 100
    assert "超过双控目标" in exceeded["message_zh"]
    log = [json.loads(x) for x in (base / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["rule"] for x in log] == ["dual_control_exceeded"]  # the log takes critical alerts only
    assert (base / "store" / "outbox.sqlite3").exists()


def test_quotas_check_bad_date(world, capsys):
    _, args, _ = world
    with pytest.raises(SystemExit) as exc:  # refused while parsing (civicwatt.argtypes)
        main(["quotas", "check", "--date", "2024-02-31", *args])
    assert exc.value.code == 2
    assert "--date" in capsys.readouterr().err


def test_quotas_check_prints_units_and_a_dash_for_missing_values(world, tmp_path, capsys):
    """Each target line names its unit; a value that cannot be computed (a category
    with no institution has no per-person figure) prints as "—", never "nan"."""
    _, args, _ = world
    quotas = tmp_path / "quotas-units.yaml"
    quotas.write_text("targets:\n"
                      "  - {id: g1-2024, year: 2024, institution: G1, energy_tce: 100, water_m3_per_person: 30}\n"
                      "  - {id: venues-2024, year: 2024, region: hebei, category: venue, kgce_per_person: 300}\n",
                      encoding="utf-8")
    args = [*args[:args.index("--quotas")], "--quotas", str(quotas)]
    assert main(["quotas", "check", "--date", "2024-06-01", *args]) == 0
    lines = {tuple(x.split()[:3]): x.split() for x in capsys.readouterr().out.splitlines() if x.startswith(("g1", "ven"))}
    energy = lines[("g1-2024", "institution:G1", "energy_tce")]
    assert energy[3] == "tce" and float(energy[5].replace(",", "")) == 100.0
    assert lines[("g1-2024", "institution:G1", "water_m3_per_person")][3] == "m3/person"
    venue = lines[("venues-2024", "region:hebei/category:venue", "kgce_per_person")]
    assert venue[3] == "kgce/person" and venue[4] == "—" and venue[6] == "—"
    assert "nan" not in " ".join(" ".join(v) for v in lines.values())
