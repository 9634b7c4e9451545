"""The `civicwatt` command: parser, shared options and verb dispatch.

The `civicwatt` command. Each verb lives in `civicwatt.commands.<verb>` with a
`run(args) -> int`; this module only parses arguments and reports errors."""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
from pathlib import Path

from civicwatt import __version__, argtypes
from civicwatt.context import load_file_secrets, missing_store_message, print_problems, resolve_locations
from core.textfile import echo
from core.yamlfile import ConfigError
from storage import StoreError, StoreMissing

# The shared options: accepted before or after the verb (after wins). The file
# locations, unset, come from the environment (CIVICWATT_STORE), then ./civicwatt.toml,
# then the defaults (civicwatt.context.resolve_locations); --log-format defaults to text.
SHARED_HELP = {
    "registry": "registry file (default: civicwatt.toml's registry, else ./civicwatt.yaml)",
    "store": "store URL: embedded:PATH or influxdb[s]://[USER:PASSWORD@]HOST:PORT/DB[?token=T] "
             "(default: $CIVICWATT_STORE, else civicwatt.toml's store, else embedded:./civicwatt-data)",
    "users": "dashboard users file (default: civicwatt.toml's users, else ./users.yaml)",
    "log-format": "log lines as text (the default) or json: one JSON object per line (time, level, logger, "
                  "message, extra fields) for log shippers",
}
LOCATIONS = ("registry", "store", "users")  # the shared options that name a file or store
SHARED_CHOICES = {"log-format": ("text", "json")}
SHARED_DEFAULTS = {"log-format": "text"}  # set where a verb takes the option and it is not given
DEMO_HELP = {
    **SHARED_HELP,
    "registry": "registry file (default: DIR/civicwatt.yaml, the sample portfolio)",
    "store": "store URL (default: embedded:DIR/data; the demo ignores $CIVICWATT_STORE and civicwatt.toml)",
    "users": "dashboard users file (default: DIR/users.yaml)",
}
STORE_AND_REGISTRY = ("registry", "store")
LOGGED = ("log-format",)  # the long-running verbs: their logging is configured once (civicwatt.runtime)
# which shared options each verb takes (the others, given before it, are refused)
VERB_SHARED: dict[str, tuple[str, ...]] = {
    "demo": (*STORE_AND_REGISTRY, "users", *LOGGED), "init": (), "simulate": (*STORE_AND_REGISTRY, *LOGGED),
    "collect": (*STORE_AND_REGISTRY, *LOGGED), "serve": (*STORE_AND_REGISTRY, "users", *LOGGED),
    "import": STORE_AND_REGISTRY, "export": STORE_AND_REGISTRY, "report": STORE_AND_REGISTRY,
    "ledger": STORE_AND_REGISTRY, "assess": STORE_AND_REGISTRY, "quotas": STORE_AND_REGISTRY,
    "mv": STORE_AND_REGISTRY, "national": STORE_AND_REGISTRY, "check-config": STORE_AND_REGISTRY,
    "users": ("registry", "users"),
    "backup": (*STORE_AND_REGISTRY, "users"),
}
# files that only some verbs take, found the same way (civicwatt.toml, then ./NAME.yaml)
VERB_FILES = ("quotas", "channels", "upstream")
DEMO_DIR = "./civicwatt-demo"


class _Parser(argparse.ArgumentParser):
    """argparse with the values it echoes in errors cut to 80 characters (core.textfile.echo)."""

    def error(self, message: str):
        super().error(_QUOTED_OR_LONG.sub(lambda m: f"'{echo(m[1])}'" if m[1] is not None else echo(m[0]), message))


_QUOTED_OR_LONG = re.compile(r"'([^']*)'|\S{81,}")


class _DeprecatedAlias(argparse.Action):
    """An old option name kept working, with a note on stderr."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated, use --{self.dest}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _shared(names: tuple[str, ...], helps: dict[str, str] = SHARED_HELP) -> list[argparse.ArgumentParser]:
    """A parent parser holding the shared options `names` (none: no parent). Their
    default is SUPPRESS so a value given after the verb wins over one given before, and
    an option given nowhere stays absent until resolve_locations fills it."""
    if not names:
        return []
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("shared options (before or after the verb)")
    for name in names:
        if name in SHARED_CHOICES:
            group.add_argument(f"--{name}", default=argparse.SUPPRESS, choices=SHARED_CHOICES[name], help=helps[name])
        else:
            group.add_argument(f"--{name}", default=argparse.SUPPRESS, metavar="URL" if name == "store" else "FILE",
                               type=str if name == "store" else argtypes.path, help=helps[name])
    return [parent]


def dest(name: str) -> str:
    """The attribute of a shared option in the parsed arguments."""
    return name.replace("-", "_")


def _quotas(p: argparse.ArgumentParser, help: str = "quota file (default: civicwatt.toml's quotas, "
                                                    "else ./quotas.yaml; used when it exists)") -> None:
    p.add_argument("--quotas", default=None, metavar="FILE", type=argtypes.path, help=help)


def _upstream(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upstream", default=None, metavar="FILE",
                   help="upward reporting: push approved months to the upper level (default: civicwatt.toml's "
                        "upstream, else ./upstream.yaml; used when it exists; token from $CIVICWATT_UPSTREAM_TOKEN)")


def _channels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channels", default=None, metavar="FILE", type=argtypes.path,
                   help="alert delivery (default: civicwatt.toml's channels, else ./channels.yaml; used when it exists)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="civicwatt", parents=_shared(tuple(SHARED_HELP), {
            name: f"{text}; for {', '.join(v for v, takes in VERB_SHARED.items() if name in takes)}"
            for name, text in SHARED_HELP.items()}),
        description="CivicWatt: energy monitoring and carbon accounting for public institutions.",
        epilog="Verbs other than demo find their files in ./civicwatt.toml when the options are not given "
               "(civicwatt demo writes one). Precedence: command line > environment (CIVICWATT_STORE) > "
               "civicwatt.toml > defaults.",
    )
    parser.add_argument("--version", action="version", version=f"civicwatt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, help: str, helps: dict[str, str] = SHARED_HELP) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=_shared(VERB_SHARED[name], helps))

    p = verb("demo", "sample portfolio, simulator, history, collectors and dashboard in one go", DEMO_HELP)
    p.add_argument("--dir", default=DEMO_DIR, type=argtypes.path,
                   help=f"where the demo keeps its registry, data and users (default {DEMO_DIR}); "
                        "it writes ./civicwatt.toml naming them for the other verbs")
    p.add_argument("--days", type=argtypes.count, default=None,
                   help="days of history to backfill (default: back to 1 January of last year, at least 400)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=argtypes.port, default=8050, help="dashboard port (default 8050)")
    p.add_argument("--modbus-port", type=argtypes.port, default=15020,
                   help="first Modbus TCP port of the simulator, one per institution (default 15020; "
                        "taken when DIR/civicwatt.yaml is written, i.e. on the first start)")

    p = verb("init", "write a commented sample civicwatt.yaml, quotas.yaml and channels.yaml")
    p.add_argument("dir", nargs="?", default=".", type=argtypes.path)
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = verb("simulate", "run only the Modbus simulator for the registry's meters")
    p.add_argument("--faults", metavar="FILE", type=argtypes.path, help="fault script (YAML)")
    p.add_argument("--seed", type=argtypes.count, default=1)

    p = verb("collect", "run the collectors, alert checks and delivery (the production runtime)")
    _quotas(p, "quota file for the alert checks (default: civicwatt.toml's quotas, else ./quotas.yaml; "
               "without it only the meter-data rules run)")
    _channels(p)
    p.add_argument("--check-interval", type=argtypes.seconds, default=900.0, metavar="SECONDS",
                   help="alert checks at start-up and then every SECONDS (default 900; the quota rules at most "
                        "hourly and on a new day)")
    _upstream(p)
    p.add_argument("--no-alerts", action="store_true",
                   help="no alert checks here (a pure collector); with --shard I/N only shard 1 runs them anyway")
    p.add_argument("--shard", default="1/1", metavar="I/N", type=argtypes.shard, help="take the I-th of N stable shares of the gateways")
    p.add_argument("--queue", default=None, metavar="DIR", type=argtypes.path, help="store-and-forward queue directory")
    p.add_argument("--gateways", default=None, metavar="FILE", type=argtypes.path,
                   help="per-gateway options (YAML: timeout_s, retries, max_registers, pause_s, connections)")
    p.add_argument("--interval", type=argtypes.whole_seconds, default=None, metavar="SECONDS",
                   help="poll every meter at this interval instead of each meter's interval_s")

    p = verb("serve", "run the dashboard, the HTTP API (/api/v1) and /healthz")
    _quotas(p)
    _upstream(p)
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=argtypes.port, default=8050, help="dashboard port (default 8050)")

    p = verb("import", "import meter readings or bills from CSV (all or nothing)")
    p.add_argument("kind", choices=["readings", "bills"])
    p.add_argument("file", type=argtypes.path)
    p.add_argument("--replace", action="store_true",
                   help="bills: correct stored bills that differ (the old values go to the audit trail)")
    p.add_argument("--reason", help="bills: why they are imported or replaced (kept in the audit trail)")

    p = verb("export", "export stored readings or consumption as CSV")
    p.add_argument("kind", choices=["readings", "consumption"])
    p.add_argument("--start", required=True, metavar="DATE", type=argtypes.when)
    p.add_argument("--end", required=True, metavar="DATE", type=argtypes.when)
    p.add_argument("--meter", action="append", metavar="ID", help="only this meter (repeatable)")
    p.add_argument("--freq", choices=["hour", "day", "month"], default="day")
    p.add_argument("--out", required=True, metavar="FILE.csv", type=argtypes.path)

    p = verb("report", "the monthly statistical report, or the statistics-system tables (statistics)")
    p.add_argument("kind", choices=["monthly", "statistics"])
    p.add_argument("--month", default=None, metavar="YYYY-MM", type=argtypes.month, help="the month (report monthly)")
    p.add_argument("--period", default=None, metavar="YYYY-MM|YYYYQn|YYYY",
                   help="a month, quarter or year (report statistics)")
    p.add_argument("--out", required=True, metavar="FILE.xlsx", type=argtypes.path)
    p.add_argument("--reporting-unit", default="", help="填报单位 of the form header (report statistics)")
    p.add_argument("--head", default="", help="单位负责人 of the form header (report statistics)")
    p.add_argument("--preparer", default="", help="填表人 of the form header (report statistics)")
    p.add_argument("--report-date", default=None, metavar="YYYY-MM-DD", type=argtypes.when,
                   help="报出日期 of the form header (default: today; report statistics)")
    _quotas(p, "quota file, for its electricity basis (default: civicwatt.toml's quotas, else ./quotas.yaml)")
    p.add_argument("--factors", default=None, metavar="FILE", type=argtypes.path, help="factor set file overriding the shipped one")

    p = verb("ledger", "the annual carbon ledger (xlsx or csv)")
    p.add_argument("--year", required=True, type=argtypes.year)
    p.add_argument("--out", required=True, metavar="FILE.xlsx|FILE.csv", type=argtypes.path)
    _quotas(p)
    p.add_argument("--factors", default=None, metavar="FILE", type=argtypes.path, help="factor set file overriding the shipped one")

    p = verb("assess", "the year-end assessment (节能考核) and its notice (通报)")
    p.add_argument("--year", required=True, type=argtypes.year)
    p.add_argument("--out", required=True, metavar="FILE.xlsx", type=argtypes.path)
    p.add_argument("--notice", default=None, metavar="FILE.xlsx|FILE.html", type=argtypes.path, help="also write the notice (通报)")
    _quotas(p)
    p.add_argument("--outbox", default=None, metavar="DIR", type=argtypes.path,
                   help="alert outbox directory, for its open data-quality alerts (default: the embedded store's "
                        "directory, else the registry's)")

    p = verb("quotas", "evaluate dual-control targets and quota standards")
    p.add_argument("action", choices=["check"])
    _quotas(p)
    p.add_argument("--date", default=None, metavar="YYYY-MM-DD", type=argtypes.when)
    p.add_argument("--notify", action="store_true", help="send alerts through the configured channels")
    _channels(p)
    p.add_argument("--outbox", default=None, metavar="DIR", type=argtypes.path,
                   help="alert outbox directory (default: the embedded store's directory, else the registry's)")

    p = verb("mv", "savings verification (IPMVP / ASHRAE Guideline 14) for an EMC project")
    p.add_argument("--project", required=True, metavar="FILE.yaml", type=argtypes.path)
    p.add_argument("--out", required=True, metavar="FILE.xlsx", type=argtypes.path)

    p = verb("national", "national indicators and rankings over province partitions, on Dask "
                         "(`national export`: a province delivers a closed month)")
    # no argparse choices: a stray option's value taken for it would hide the option's own error
    p.add_argument("action", nargs="?", metavar="export", help="export: write --month of --province into --dataset")
    p.add_argument("--dataset", required=True, metavar="DIR", help="the national dataset (a directory or URL)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786", help="an existing Dask scheduler")
    p.add_argument("--workers", type=argtypes.workers, default=2, help="workers of the local cluster (without --scheduler)")
    p.add_argument("--year", type=argtypes.year, default=None)
    p.add_argument("--out", default=None, metavar="FILE.xlsx|FILE.csv", type=argtypes.path)
    # its own dest: the province's quotas of civicwatt.toml are not national targets
    p.add_argument("--quotas", dest="national_quotas", default=None, metavar="FILE", type=argtypes.path,
                   help="national targets (region: national or a province)")
    p.add_argument("--factors", default=None, metavar="FILE", type=argtypes.path, help="factor set file overriding the shipped one")
    p.add_argument("--province", default=None, metavar="ID", help="export: the province's region id")
    p.add_argument("--month", default=None, metavar="YYYY-MM", help="export: a closed month")

    p = verb("check-config", "validate the registry and quota files, print every problem")
    _quotas(p)

    p = verb("backup", "a consistent copy of the embedded store (SQLite online backup, while collectors write), "
                       "the outbox and the configuration files")
    p.add_argument("--out", required=True, metavar="DIR", type=argtypes.path, help="the backup directory (must not exist, or be empty)")
    _quotas(p, "quota file to copy (default: civicwatt.toml's quotas, else ./quotas.yaml)")
    _channels(p)

    p = verb("users", "manage dashboard users (hashed passwords) and their API tokens")
    p.add_argument("action", choices=["add", "remove", "list", "passwd", "token", "tokens"],
                   help="token USER: a new API token for USER (printed once; --revoke ID deletes one); "
                        "tokens [USER]: list the tokens (ids, never the secrets)")
    p.add_argument("username", nargs="?")
    p.add_argument("--file", dest="users", action=_DeprecatedAlias, default=argparse.SUPPRESS, type=argtypes.path,
                   help=argparse.SUPPRESS)  # before --users was the one name for users and serve
    p.add_argument("--role", choices=["admin", "region", "institution"])
    p.add_argument("--scope", help="region id (region role) or institution id (institution role)")
    p.add_argument("--password", help="the password (default: ask, or generate with --generate)")
    p.add_argument("--generate", action="store_true", help="generate a password and print it")
    p.add_argument("--revoke", metavar="ID", help="with token: delete the token ID of USER")
    return parser


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The verb's arguments with every file location resolved (see resolve_locations);
    a shared option given before a verb that does not take it is an error."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        return args
    takes = VERB_SHARED[args.verb]
    stray = [f"--{name}" for name in SHARED_HELP if name not in takes and hasattr(args, dest(name))]
    if stray:
        parser.error(f"civicwatt {args.verb} does not take {', '.join(stray)}")
    for name in takes:
        if name in SHARED_DEFAULTS and not hasattr(args, dest(name)):
            setattr(args, dest(name), SHARED_DEFAULTS[name])
    locations = tuple(n for n in takes if n in LOCATIONS)
    if args.verb == "demo":
        base = Path(args.dir)
        resolve_locations(args, locations, discover=False, defaults={
            "registry": str(base / "civicwatt.yaml"), "store": f"embedded:{base / 'data'}",
            "users": str(base / "users.yaml")})
    else:
        resolve_locations(args, locations + tuple(n for n in VERB_FILES if hasattr(args, n)))
    store = getattr(args, "store", None)
    if store is not None and not store.startswith(("embedded:", "influxdb://", "influxdbs://")):
        parser.error(f"unknown store URL '{echo(store)}' (from {args.origin['store']}): "
                     "use embedded:PATH or influxdb://HOST:PORT/DATABASE")
    problem = None if store is None else argtypes.store_url(store)
    if problem:
        parser.error(f"bad store URL (from {args.origin['store']}): {problem}")
    return args


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def install_stop_signals() -> None:
    """SIGTERM (systemd, docker, kill) stops a verb the way Ctrl-C does: cleanly, with
    queues flushed. SIGINT is re-armed too, since a shell's background job inherits it
    ignored."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(argv, parser)
    except ConfigError as exc:  # a bad civicwatt.toml
        return print_problems(exc)
    if not args.verb:
        parser.print_help()
        return 2
    module_name = args.verb.replace("-", "_")
    try:
        module = importlib.import_module(f"civicwatt.commands.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("civicwatt.commands"):
            print(f"civicwatt {args.verb}: not available yet in this version", file=sys.stderr)
            return 2
        raise
    if threading.current_thread() is threading.main_thread():
        install_stop_signals()
    logged = hasattr(args, "log_format")  # a long-running verb: one logging set-up, the runtime's
    if logged:
        from civicwatt.runtime import configure_logging

        configure_logging(args.log_format)
    try:
        load_file_secrets()
        return int(module.run(args) or 0)
    except ConfigError as exc:
        return print_problems(exc)
    except StoreMissing as exc:
        print(f"civicwatt {args.verb}: {missing_store_message(args, exc)}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"civicwatt {args.verb}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path given that cannot be read or written (a directory, no permission, disk full)
        where = f"{echo(exc.filename)}: " if exc.filename else ""
        print(f"civicwatt {args.verb}: {where}{exc.strerror or echo(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if logged:
            from civicwatt.runtime import reset_logging

            reset_logging()


if __name__ == "__main__":
    sys.exit(main())
