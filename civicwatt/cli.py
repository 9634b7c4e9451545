"""The `civicwatt` command. Each verb lives in `civicwatt.commands.<verb>` with a
`run(args) -> int`; this module only parses arguments and reports errors."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from civicwatt import __version__
from core.yamlfile import ConfigError

DEFAULT_REGISTRY = "./civicwatt.yaml"
DEFAULT_QUOTAS = "./quotas.yaml"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", default=DEFAULT_REGISTRY, metavar="FILE",
                   help="registry file (default ./civicwatt.yaml)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="store URL: embedded:PATH or influxdb://[USER:PASSWORD@]HOST:PORT/DB[?token=T] "
                        "(default: $CIVICWATT_STORE, else embedded:./civicwatt-data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="civicwatt",
        description="CivicWatt: energy monitoring and carbon accounting for public institutions.",
    )
    parser.add_argument("--version", action="version", version=f"civicwatt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("demo", help="sample portfolio, simulator, history, collectors and dashboard in one go")
    _common(p)
    p.add_argument("--dir", default="./civicwatt-demo", help="where the demo writes its registry and data")
    p.add_argument("--days", type=int, default=None,
                   help="days of history to backfill (default: back to 1 January of last year, at least 400)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--modbus-port", type=int, default=15020, help="first Modbus TCP port of the simulator")

    p = sub.add_parser("init", help="write a commented sample civicwatt.yaml, quotas.yaml and channels.yaml")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = sub.add_parser("simulate", help="run only the Modbus simulator for the registry's meters")
    _common(p)
    p.add_argument("--faults", metavar="FILE", help="fault script (YAML)")
    p.add_argument("--seed", type=int, default=1)

    p = sub.add_parser("collect", help="run only the collectors and the scheduler")
    _common(p)
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE")
    p.add_argument("--shard", default="1/1", metavar="I/N", help="take the I-th of N stable shares of the gateways")
    p.add_argument("--queue", default=None, metavar="DIR", help="store-and-forward queue directory")
    p.add_argument("--gateways", default=None, metavar="FILE",
                   help="per-gateway options (YAML: timeout_s, retries, max_registers, pause_s, connections)")
    p.add_argument("--interval", type=int, default=None, metavar="SECONDS",
                   help="poll every meter at this interval instead of each meter's interval_s")

    p = sub.add_parser("serve", help="run only the dashboard")
    _common(p)
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--users", default="./users.yaml", metavar="FILE")

    p = sub.add_parser("import", help="import meter readings or bills from CSV (all or nothing)")
    _common(p)
    p.add_argument("kind", choices=["readings", "bills"])
    p.add_argument("file")

    p = sub.add_parser("export", help="export stored readings or consumption as CSV")
    _common(p)
    p.add_argument("kind", choices=["readings", "consumption"])
    p.add_argument("--start", required=True, metavar="DATE")
    p.add_argument("--end", required=True, metavar="DATE")
    p.add_argument("--meter", action="append", metavar="ID", help="only this meter (repeatable)")
    p.add_argument("--freq", choices=["hour", "day", "month"], default="day")
    p.add_argument("--out", required=True, metavar="FILE.csv")

    p = sub.add_parser("report", help="the monthly statistical report")
    _common(p)
    p.add_argument("kind", choices=["monthly"])
    p.add_argument("--month", required=True, metavar="YYYY-MM")
    p.add_argument("--out", required=True, metavar="FILE.xlsx")
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE", help="quota file (its electricity basis)")
    p.add_argument("--factors", default=None, metavar="FILE", help="factor set file overriding the shipped one")

    p = sub.add_parser("ledger", help="the annual carbon ledger (xlsx or csv)")
    _common(p)
    p.add_argument("--year", required=True, type=int)
    p.add_argument("--out", required=True, metavar="FILE.xlsx|FILE.csv")
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE")
    p.add_argument("--factors", default=None, metavar="FILE", help="factor set file overriding the shipped one")

    p = sub.add_parser("quotas", help="evaluate dual-control targets and quota standards")
    _common(p)
    p.add_argument("action", choices=["check"])
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE")
    p.add_argument("--date", default=None, metavar="YYYY-MM-DD")
    p.add_argument("--notify", action="store_true", help="send alerts through the configured channels")
    p.add_argument("--channels", default="./channels.yaml", metavar="FILE")
    p.add_argument("--outbox", default=None, metavar="DIR",
                   help="alert outbox directory (default: the embedded store's directory, else the registry's)")

    p = sub.add_parser("mv", help="savings verification (IPMVP / ASHRAE Guideline 14) for an EMC project")
    _common(p)
    p.add_argument("--project", required=True, metavar="FILE.yaml")
    p.add_argument("--out", required=True, metavar="FILE.xlsx")

    p = sub.add_parser("national", help="national indicators and rankings over province partitions, on Dask "
                                        "(`national export`: a province delivers a closed month)")
    _common(p)
    p.add_argument("action", nargs="?", choices=["export"], help="export: write --month of --province into --dataset")
    p.add_argument("--dataset", required=True, metavar="DIR", help="the national dataset (a directory or URL)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786", help="an existing Dask scheduler")
    p.add_argument("--workers", type=int, default=2, help="workers of the local cluster (without --scheduler)")
    p.add_argument("--year", type=int, default=None)
    p.add_argument("--out", default=None, metavar="FILE.xlsx|FILE.csv")
    p.add_argument("--quotas", default=None, metavar="FILE", help="national targets (region: national or a province)")
    p.add_argument("--factors", default=None, metavar="FILE", help="factor set file overriding the shipped one")
    p.add_argument("--province", default=None, metavar="ID", help="export: the province's region id")
    p.add_argument("--month", default=None, metavar="YYYY-MM", help="export: a closed month")

    p = sub.add_parser("check-config", help="validate the registry and quota files, print every problem")
    _common(p)
    p.add_argument("--quotas", default=DEFAULT_QUOTAS, metavar="FILE")

    p = sub.add_parser("users", help="manage dashboard users (hashed passwords)")
    p.add_argument("action", choices=["add", "remove", "list", "passwd"])
    p.add_argument("username", nargs="?")
    p.add_argument("--file", default="./users.yaml", metavar="FILE")
    p.add_argument("--role", choices=["admin", "region", "institution"])
    p.add_argument("--scope", help="region id (region role) or institution id (institution role)")
    p.add_argument("--password", help="the password (default: ask, or generate with --generate)")
    p.add_argument("--generate", action="store_true", help="generate a password and print it")
    return parser


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
    args = parser.parse_args(argv)
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
    try:
        return int(module.run(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
