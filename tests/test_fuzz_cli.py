"""Fuzzing the command line (issue 15 item 3): generated argument lists — bad dates, months,
years, ports, intervals, shard specs, store URLs, paths that are directories, missing,
unreadable, too long or hold a NUL, YAML files of every kind that are junk — end with exit
0, 1 or 2 and a message, never a traceback; values echoed are cut to 80 characters. The
config loaders the verbs call (quotas, channels, M&V project, fault script, gateway
options, users) get mutated YAML: accepted or rejected naming file, line and field."""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicwatt.cli import main
from civicwatt.sample import write_sample
from core.registry import load_registry
from core.textfile import MAX_ECHO
from tests import support_fuzz as fz
from tests.test_mv_project import PROJECT

LONG = "x" * 300
LONG_RUNNING = ("demo", "collect", "serve", "simulate", "national")  # given only arguments that must be refused


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("clifuzz")
    write_sample(d, n_institutions=1)
    (d / "junk.yaml").write_bytes(b"\xff\xfe\x00junk: [\n")
    (d / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    (d / "scalar.yaml").write_text("hello\n", encoding="utf-8")
    (d / "empty.yaml").write_text("", encoding="utf-8")
    (d / "dup.yaml").write_text("a: 1\na: 2\n", encoding="utf-8")
    (d / "deep.yaml").write_text("[" * 3000 + "]" * 3000, encoding="utf-8")
    (d / "bomb.yaml").write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
        encoding="utf-8")
    (d / "readings.csv").write_text("meter_id,time,value\nHB-0001-E0,2025-01-01T00:00:00+08:00,1\n", encoding="utf-8")
    (d / "adir").mkdir()
    return d


def argument_lists(rnd: random.Random, d) -> list[str]:
    """One command line: a verb and options drawn from good values and bad ones."""
    bad_files = [str(d / n) for n in ("adir", "missing.yaml", "junk.yaml", "list.yaml", "scalar.yaml", "empty.yaml",
                                      "dup.yaml", "deep.yaml", "bomb.yaml")] + [LONG, "/dev/null", "bad\x00path",
                                                                               "/proc/self/mem"]
    outs = [str(d / "adir"), str(d / "no" / "such" / "dir" / "o.csv"), "/proc/o.csv", LONG + ".csv", "bad\x00.csv",
            str(d / "civicwatt.yaml" / "o.csv")]
    reg, store = str(d / "civicwatt.yaml"), f"embedded:{d / 'data'}"

    def pick(good, bad, p_good=0.5):
        return rnd.choice(good) if rnd.random() < p_good else rnd.choice(bad)

    dates = (["2025-01-01", "2025-03-01"], ["2024-13-01", "2024-02-30", "x", "", "9999-12-31", "0001-01-01", "-1",
                                            "2024-01-01T25:00", "1e308", "2" * 200])
    months = (["2025-01"], ["2024-13", "9999-12", "0000-01", "abc", "2024-1", LONG])
    years = (["2025", "2024"], ["-1", "0", "99999", "abc", "1e3", LONG])
    ports = ["-1", "65536", "99999999", "abc", "", "1e3"]
    stores = [f"embedded:{d / 'civicwatt.yaml'}", "influxdb://127.0.0.1:99999/db", "influxdb://[::1/db", "embedded:",
              "embedded:bad\x00x", f"embedded:{d / 'adir'}", "influxdb:///db", "mysql://x", LONG]
    quotas = ["--quotas", pick([str(d / "quotas.yaml")], bad_files)]
    verb = rnd.choice(["import", "export", "report", "ledger", "assess", "quotas", "mv", "check-config", "backup",
                       "init", "users", *LONG_RUNNING])
    if verb == "import":
        argv = [verb, rnd.choice(["readings", "bills"]), pick([str(d / "readings.csv")], bad_files)]
    elif verb == "export":
        argv = [verb, rnd.choice(["readings", "consumption"]), "--start", pick(*dates), "--end", pick(*dates),
                "--freq", pick(["day", "hour"], ["week", LONG]), "--out", pick([str(d / "o.csv")], outs)]
    elif verb == "report":
        argv = [verb, "monthly", "--month", pick(*months), "--out", pick([str(d / "o.xlsx")], outs), *quotas,
                "--factors", pick(bad_files, bad_files)]
    elif verb in ("ledger", "assess"):
        argv = [verb, "--year", pick(*years), "--out", pick([str(d / "o.xlsx")], outs), *quotas]
        if verb == "assess":
            argv += ["--outbox", pick([str(d / "outbox")], bad_files), "--notice", pick([str(d / "n.html")], outs)]
    elif verb == "quotas":
        argv = [verb, "check", "--date", pick(*dates), *quotas, "--channels", pick([str(d / "channels.yaml")],
                                                                                    bad_files),
                "--outbox", pick([str(d / "outbox")], bad_files), *(["--notify"] if rnd.random() < 0.3 else [])]
    elif verb == "mv":
        argv = [verb, "--project", rnd.choice(bad_files), "--out", pick([str(d / "mv.xlsx")], outs)]
    elif verb == "check-config":
        argv = [verb, *quotas]
    elif verb == "backup":
        argv = [verb, "--out", pick([str(d / f"bk{rnd.randrange(10**6)}")], outs + bad_files), *quotas,
                "--channels", rnd.choice(bad_files)]
    elif verb == "init":
        argv = [verb, rnd.choice(outs + bad_files + [str(d)])]
    elif verb == "users":
        argv = [verb, rnd.choice(["add", "remove", "list", "passwd"]), rnd.choice(["", LONG, "bob", "a\x00b"]),
                "--users", pick([str(d / "users.yaml")], bad_files), "--role", rnd.choice(["admin", "institution"]),
                "--scope", rnd.choice(["", "HB-0001", "zz"]), "--password", rnd.choice(["", "long-enough-pass-1"])]
    else:  # a long-running verb: at least one refused value, so it ends at once
        bad = {"demo": [["--port", rnd.choice(ports)], ["--modbus-port", rnd.choice(ports)],
                        ["--days", rnd.choice(["-1", "abc", LONG])], ["--dir", rnd.choice([LONG, "bad\x00d"])]],
               "serve": [["--port", rnd.choice(ports)]],
               "national": [["--dataset", str(d / "ds"), "--year", rnd.choice(years[1])],
                            ["--dataset", str(d / "ds"), "--year", "2025", "--workers", rnd.choice(["0", "-1", "x"])],
                            ["--dataset", str(d / "ds"), "--year", "2025", "--out", rnd.choice([LONG, "o\x00.csv"])]],
               "simulate": [["--seed", rnd.choice(["-1", "abc", "9" * 30])]],
               "collect": [["--shard", rnd.choice(["0/1", "2/1", "1/0", "a/b", "1", "//", "1/-1"])],
                           ["--interval", rnd.choice(["0", "-5", "abc", "1e308", "0.5"])],
                           ["--check-interval", rnd.choice(["nan", "-1", "inf", "0"])],
                           ["--queue", rnd.choice([LONG, "q\x00"])], ["--gateways", rnd.choice([LONG, "g\x00"])]]}
        argv = [verb, *rnd.choice(bad[verb])]
        if verb == "simulate":
            argv += ["--faults", rnd.choice(bad_files)]
    if verb not in ("init", "users", "demo"):
        argv += ["--registry", pick([reg], bad_files, 0.7), "--store", pick([store], stores, 0.7)]
    return argv


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_no_argument_list_gives_a_traceback(site, monkeypatch, rnd: random.Random):
    monkeypatch.chdir(site)
    monkeypatch.delenv("CIVICWATT_STORE", raising=False)
    argv = argument_lists(rnd, site)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: 2 for a refused value (0 for --help)
            code = exc.code
    assert code in (0, 1, 2), argv
    message = err.getvalue()
    if code:
        assert message.strip(), f"exit {code} without a message: {argv}"
    for line in message.splitlines():
        assert LONG not in line and "\x00" not in line, line[:200]  # echoed values are cut (core.textfile.echo)
    if argv[0] in LONG_RUNNING:
        assert code in (1, 2), argv


def test_refused_values_are_named_and_cut(site, monkeypatch, capsys):
    monkeypatch.chdir(site)
    cases = [(["serve", "--port", "99999999"], "--port", "99999999"),
             (["collect", "--shard", "3/2"], "--shard", "3/2"),
             (["export", "readings", "--start", "2024-02-30", "--end", "2024-03-01", "--out", "o.csv"], "--start",
              "2024-02-30"),
             (["report", "monthly", "--month", "9999-12", "--out", "r.xlsx"], "--month", "9999-12"),
             (["ledger", "--year", "-1", "--out", "l.csv"], "--year", "-1"),
             (["import", "readings", LONG], "file", "x" * MAX_ECHO + "…"),
             (["check-config", "--store", "influxdb://127.0.0.1:99999/db"], "store", "99999")]
    for argv, option, value in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        msg = capsys.readouterr().err
        assert option in msg and value in msg, msg
        assert LONG not in msg


def test_a_directory_or_unreadable_path_is_a_message(site, monkeypatch, capsys):
    monkeypatch.chdir(site)
    common = ["--registry", str(site / "civicwatt.yaml"), "--store", f"embedded:{site / 'data'}"]
    assert main(["import", "readings", str(site / "adir"), *common]) == 1
    assert str(site / "adir") in capsys.readouterr().err
    assert main(["export", "readings", "--start", "2025-01-01", "--end", "2025-01-02", "--out", str(site / "adir"),
                 *common]) == 1
    assert "Is a directory" in capsys.readouterr().err
    assert main(["check-config", "--registry", str(site / "adir")]) == 1
    assert str(site / "adir") in capsys.readouterr().err


# -- the loaders of the verbs' other YAML files -----------------------------------------------
YAML_TOKENS = ["&a [1, 2]", "*a", "!!python/object:os.system", "{", "[", "}", "]", "? ", ": ", "\t", "- ", "---\n",
               "...", "~", "null", "yes", "0o17", ".inf", "-.nan", "'", '"', "#", "|", ">", "<<: *a", "2024-02-30",
               "1e999", "[" * 50, LONG]
FAULTS = "- {meter: M1, kind: replacement, new_index: 12.5, at_s: 120}\n- {gateway: 15021, kind: hang, duration_s: 5}\n"
GATEWAYS = '"*": {timeout_s: 0.5, retries: 2}\n"10.0.0.1:502": {max_registers: 4, pause_s: 0.1, connections: 2}\n'
USERS = "users:\n  admin: {role: admin, password: 'scrypt$abc'}\n"


@pytest.fixture(scope="module")
def loaders(site):
    from alerts.channels import load_channels
    from civicwatt.commands.collect import load_gateway_options
    from civicwatt.commands.simulate import load_fault_script
    from core.users import load_users
    from quotas.config import load_quotas
    from verification.project import load_project

    reg = load_registry(site / "civicwatt.yaml")
    days = pd.date_range("2024-01-01", "2025-06-30", freq="D")
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temp_c": np.linspace(-5, 30, len(days)).round(1)}).to_csv(
        site / "temps.csv", index=False)
    return {"quotas": (lambda p: load_quotas(p, reg), (site / "quotas.yaml").read_text(encoding="utf-8")),
            "channels": (load_channels, (site / "channels.yaml").read_text(encoding="utf-8")),
            "project": (lambda p: load_project(p, reg), PROJECT),
            "faults": (lambda p: load_fault_script(p, {"M1"}), FAULTS),
            "gateways": (load_gateway_options, GATEWAYS),
            "users": (load_users, USERS)}


def test_the_sample_files_load(loaders, site):
    for name, (load, text) in loaders.items():
        path = fz.write(site, f"{name}-good.yaml", text.encode())
        assert load(path) is not None, name


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_fuzzed_config_files_are_accepted_or_cleanly_rejected(loaders, site, rnd: random.Random):
    name = rnd.choice(sorted(loaders))
    load, base = loaders[name]
    text = fz.mutate_text(rnd, base)
    for _ in range(rnd.randint(0, 3)):
        pos = rnd.randrange(len(text) + 1)
        text = text[:pos] + rnd.choice(YAML_TOKENS) + text[pos:]
    path = fz.write(site, f"{name}.yaml", fz.encode(rnd, text))
    verdict, value = fz.outcome(lambda: load(path))
    assert verdict != "crash", f"{name}: {type(value).__name__}: {value}"
    if verdict == "rejected":
        assert fz.rejection_is_clean(value, str(path), one_line=False), str(value)


def test_an_alias_bomb_project_is_refused_at_once(site, monkeypatch, capsys):
    monkeypatch.chdir(site)
    assert main(["mv", "--project", str(site / "bomb.yaml"), "--out", str(site / "mv.xlsx"),
                 "--registry", str(site / "civicwatt.yaml"), "--store", f"embedded:{site / 'data'}"]) == 1
    err = capsys.readouterr().err  # refused before expanding (core.yamlfile's alias limit), not computed for minutes
    assert f"{site / 'bomb.yaml'}:1: -: anchors and aliases expand to" in err
