"""The CLI's shared options: before or after the verb, in every verb's help, and where
an option that is not given comes from (command line > CIVICWATT_STORE > civicwatt.toml
> defaults)."""

from __future__ import annotations

import argparse

import pytest

from civicwatt.cli import LOCATIONS, SHARED_HELP, VERB_SHARED, build_parser, dest, main, parse_args
from civicwatt.context import load_workdir_config, write_workdir_config
from core.yamlfile import ConfigError

# A minimal valid command line of every verb (nothing is run here: only parsed).
VERB_ARGS = {
    "demo": ["demo", "--days", "3", "--port", "8123"],
    "init": ["init", "somewhere"],
    "simulate": ["simulate", "--seed", "2"],
    "collect": ["collect", "--shard", "1/2"],
    "serve": ["serve", "--port", "8124"],
    "import": ["import", "readings", "r.csv"],
    "export": ["export", "consumption", "--start", "2024-01-01", "--end", "2024-01-31", "--out", "c.csv"],
    "report": ["report", "monthly", "--month", "2024-01", "--out", "r.xlsx"],
    "ledger": ["ledger", "--year", "2024", "--out", "l.csv"],
    "assess": ["assess", "--year", "2024", "--out", "a.xlsx"],
    "quotas": ["quotas", "check", "--date", "2024-12-31"],
    "mv": ["mv", "--project", "p.yaml", "--out", "m.xlsx"],
    "national": ["national", "--dataset", "nd", "--year", "2024", "--out", "n.csv"],
    "check-config": ["check-config"],
    "users": ["users", "list"],
    "backup": ["backup", "--out", "bk"],
}
VALUES = {"registry": "elsewhere/reg.yaml", "store": "embedded:elsewhere/data", "users": "elsewhere/u.yaml",
          "log-format": "json"}
OTHER = {"registry": "before", "store": "embedded:before", "users": "before", "log-format": "text"}


def verbs_of(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_every_verb_has_a_case_here():
    assert set(VERB_ARGS) == set(VERB_SHARED) == verbs_of(build_parser())


@pytest.fixture(autouse=True)
def empty_workdir(tmp_path, monkeypatch):
    """No civicwatt.toml and no CIVICWATT_STORE unless a test sets them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CIVICWATT_STORE", raising=False)


def shared(verb: str) -> list[str]:
    return [x for name in VERB_SHARED[verb] for x in (f"--{name}", VALUES[name])]


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
def test_shared_options_before_or_after_the_verb_parse_alike(verb):
    argv = VERB_ARGS[verb]
    opts = shared(verb)
    before = vars(parse_args([*opts, *argv]))
    right_after = vars(parse_args([argv[0], *opts, *argv[1:]]))
    at_end = vars(parse_args([*argv, *opts]))
    assert before == right_after == at_end
    for name in VERB_SHARED[verb]:
        assert before[dest(name)] == VALUES[name]
        if name in LOCATIONS:
            assert before["origin"][name] == "command line"


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
def test_a_shared_option_a_verb_does_not_take_is_refused_in_both_places(verb, capsys):
    argv = VERB_ARGS[verb]
    for name in sorted(set(SHARED_HELP) - set(VERB_SHARED[verb])):
        for placed in ([f"--{name}", VALUES[name], *argv], [*argv, f"--{name}", VALUES[name]]):
            with pytest.raises(SystemExit) as exc:
                parse_args(placed)
            assert exc.value.code == 2
            assert f"--{name}" in capsys.readouterr().err


@pytest.mark.parametrize("verb", sorted(v for v in VERB_ARGS if VERB_SHARED[v]))
def test_a_value_after_the_verb_wins_over_one_before(verb):
    argv = VERB_ARGS[verb]
    before = [x for name in VERB_SHARED[verb] for x in (f"--{name}", OTHER[name])]
    args = parse_args([*before, *argv, *shared(verb)])
    assert {n: getattr(args, dest(n)) for n in VERB_SHARED[verb]} == {n: VALUES[n] for n in VERB_SHARED[verb]}
    # and the other way round: the value after the verb is the one taken
    args = parse_args([*shared(verb), *argv, *before])
    assert {n: getattr(args, dest(n)) for n in VERB_SHARED[verb]} == {n: OTHER[n] for n in VERB_SHARED[verb]}


def write_toml(text: str) -> None:
    with open("civicwatt.toml", "w", encoding="utf-8") as fh:
        fh.write(text)


TOML = """\
registry = "site/reg.yaml"
store = "embedded:site/data"
quotas = "site/q.yaml"
channels = "site/ch.yaml"
users = "site/users.yaml"
"""


@pytest.mark.parametrize("verb", sorted(v for v in VERB_ARGS if v != "demo"))
def test_unset_options_come_from_civicwatt_toml_then_defaults(verb):
    argv = VERB_ARGS[verb]
    plain = parse_args(argv)
    names = [*(n for n in VERB_SHARED[verb] if n in LOCATIONS), *(n for n in ("quotas", "channels") if hasattr(plain, n))]
    defaults = {"registry": "./civicwatt.yaml", "store": "embedded:./civicwatt-data", "users": "./users.yaml",
                "quotas": "./quotas.yaml", "channels": "./channels.yaml"}
    assert {n: (getattr(plain, n), plain.origin[n]) for n in names} == {n: (defaults[n], "default") for n in names}

    write_toml(TOML)
    found = parse_args(argv)
    from_file = {"registry": "site/reg.yaml", "store": "embedded:site/data", "users": "site/users.yaml",
                 "quotas": "site/q.yaml", "channels": "site/ch.yaml"}
    assert {n: (getattr(found, n), found.origin[n]) for n in names} == {n: (from_file[n], "civicwatt.toml")
                                                                        for n in names}


def test_precedence_command_line_then_environment_then_file_then_default(monkeypatch):
    argv = VERB_ARGS["report"]
    assert parse_args(argv).store == "embedded:./civicwatt-data"
    write_toml('store = "embedded:from-file"\n')
    assert parse_args(argv).store == "embedded:from-file"
    monkeypatch.setenv("CIVICWATT_STORE", "embedded:from-env")
    args = parse_args(argv)
    assert (args.store, args.origin["store"]) == ("embedded:from-env", "CIVICWATT_STORE")
    args = parse_args([*argv, "--store", "embedded:from-cli"])
    assert (args.store, args.origin["store"]) == ("embedded:from-cli", "command line")
    # the quota file: command line over civicwatt.toml
    write_toml('quotas = "site/q.yaml"\n')
    assert parse_args(argv).quotas == "site/q.yaml"
    assert parse_args([*argv, "--quotas", "mine.yaml"]).quotas == "mine.yaml"


def test_the_demo_keeps_to_its_directory(monkeypatch):
    """Neither a civicwatt.toml (perhaps naming a production store) nor CIVICWATT_STORE
    sends the demo's simulated history anywhere but its own directory."""
    write_toml('store = "influxdb://production:8086/civicwatt"\nregistry = "real.yaml"\n')
    monkeypatch.setenv("CIVICWATT_STORE", "influxdb://production:8086/civicwatt")
    args = parse_args(["demo", "--dir", "d"])
    assert (args.registry, args.store, args.users) == ("d/civicwatt.yaml", "embedded:d/data", "d/users.yaml")
    assert parse_args(["--store", "embedded:x", "demo"]).store == "embedded:x"


@pytest.mark.parametrize("verb", sorted(v for v in VERB_ARGS if "log-format" in VERB_SHARED[v]))
def test_the_log_format_defaults_to_text_and_takes_only_text_or_json(verb, capsys):
    assert parse_args(VERB_ARGS[verb]).log_format == "text"
    with pytest.raises(SystemExit) as exc:
        parse_args([*VERB_ARGS[verb], "--log-format", "xml"])
    assert exc.value.code == 2 and "--log-format" in capsys.readouterr().err


def test_help_shows_the_shared_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    for name in SHARED_HELP:
        assert f"--{name}" in top
    assert "civicwatt.toml" in top and "CIVICWATT_STORE" in top


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
def test_each_verbs_help_shows_the_shared_options_it_takes(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = capsys.readouterr().out
    for name in SHARED_HELP:
        assert (f"--{name} " in text) == (name in VERB_SHARED[verb]), name
    if VERB_SHARED[verb]:
        assert "shared options (before or after the verb)" in text
    assert "--file" not in text  # the deprecated alias of `users --users` is hidden


def test_users_file_has_one_name_for_users_and_serve_and_the_old_one_still_works(capsys, tmp_path):
    assert main(["users", "add", "ann", "--role", "admin", "--password", "p" * 12, "--users", "a.yaml"]) == 0
    assert main(["--users", "a.yaml", "users", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ann\tadmin\t-"
    assert main(["users", "list", "--file", "a.yaml"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["ann\tadmin\t-"]
    assert "--file is deprecated, use --users" in captured.err
    assert parse_args(["serve", "--users", "a.yaml"]).users == "a.yaml"


def test_a_bad_store_url_is_refused_saying_where_it_came_from(capsys):
    write_toml('store = "sqlite:data.db"\n')
    with pytest.raises(SystemExit) as exc:
        parse_args(VERB_ARGS["ledger"])
    assert exc.value.code == 2
    assert "unknown store URL 'sqlite:data.db' (from civicwatt.toml)" in capsys.readouterr().err


def test_civicwatt_toml_problems_name_file_line_and_field(capsys):
    write_toml('# a comment\nregistry = "r.yaml"\nstroe = "embedded:x"\nusers = 3\n')
    with pytest.raises(ConfigError) as exc:
        load_workdir_config("civicwatt.toml")
    problems = sorted(str(p) for p in exc.value.problems)
    assert problems[0].startswith("civicwatt.toml:3: stroe: unknown key")
    assert problems[1].startswith("civicwatt.toml:4: users: Input should be a valid string")
    assert main(VERB_ARGS["ledger"]) == 1  # the verb stops there, with the same problems
    assert "civicwatt.toml:3: stroe" in capsys.readouterr().err

    write_toml('registry = "r.yaml"\nstore = \n')
    with pytest.raises(ConfigError) as exc:
        load_workdir_config("civicwatt.toml")
    assert str(exc.value.problems[0]).startswith("civicwatt.toml:2: -: TOML syntax error")


def test_paths_in_civicwatt_toml_are_relative_to_its_directory(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "civicwatt.toml").write_text(
        'registry = "demo/civicwatt.yaml"\nstore = "embedded:demo/data"\nusers = "/abs/users.yaml"\n'
        'quotas = "../q.yaml"\nchannels = "influx"\n', encoding="utf-8")
    got = load_workdir_config(tmp_path / "w" / "civicwatt.toml")
    w = tmp_path / "w"
    assert got == {"registry": str(w / "demo/civicwatt.yaml"), "store": f"embedded:{w / 'demo/data'}",
                   "users": "/abs/users.yaml", "quotas": str(w / "../q.yaml"), "channels": str(w / "influx")}
    # an InfluxDB URL is kept as it is
    (w / "civicwatt.toml").write_text('store = "influxdb://h:8086/db?token=a/b"\n', encoding="utf-8")
    assert load_workdir_config(w / "civicwatt.toml") == {"store": "influxdb://h:8086/db?token=a/b"}


def test_the_demos_civicwatt_toml_round_trips_and_a_foreign_one_is_left_alone(tmp_path):
    where = {"registry": str(tmp_path / "demo/civicwatt.yaml"), "store": f"embedded:{tmp_path / 'demo/data'}",
             "quotas": str(tmp_path / "demo/quotas.yaml"), "channels": "/elsewhere/ch \"x\".yaml",
             "users": str(tmp_path / "demo/users.yaml")}
    path, ok = write_workdir_config(tmp_path, where)
    assert ok and path == tmp_path / "civicwatt.toml"
    text = path.read_text(encoding="utf-8")
    assert 'registry = "demo/civicwatt.yaml"' in text and 'store = "embedded:demo/data"' in text
    assert load_workdir_config(path) == where
    mine = 'store = "embedded:mine"\n'
    path.write_text(mine, encoding="utf-8")
    assert write_workdir_config(tmp_path, where) == (path, False)
    assert path.read_text(encoding="utf-8") == mine


def test_national_quotas_are_not_the_provinces_quotas_of_civicwatt_toml(tmp_path):
    (tmp_path / "quotas.yaml").write_text("targets: []\n")
    write_workdir_config(tmp_path, {"quotas": str(tmp_path / "quotas.yaml")})
    args = parse_args(["national", "--dataset", "nd", "--year", "2024", "--out", "n.csv"])
    assert args.national_quotas is None
    args = parse_args(["national", "--dataset", "nd", "--year", "2024", "--out", "n.csv", "--quotas", "nat.yaml"])
    assert args.national_quotas == "nat.yaml"
