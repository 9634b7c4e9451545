"""What every verb needs: file locations, registry, store, secrets.

What every verb needs: where its files are (command line > environment >
`./civicwatt.toml` > defaults), its secrets, and the registry and the store, opened and wired together.

Secrets never sit in the registry or `civicwatt.toml`: each comes from its environment
variable, or from the file named by the same variable with `_FILE` appended (systemd
credentials, Docker secrets; see deploy/): `CIVICWATT_SECRET_KEY` (the dashboard's
session key) and `CIVICWATT_INFLUX_TOKEN` (put into an InfluxDB store URL that carries
no credentials of its own, as `?token=`; for InfluxDB 1.8 with auth on, `USER:PASSWORD`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from core.registry import Registry, load_registry, with_reported
from core.yamlfile import ConfigError, LineDict, Problem, pydantic_problems
from storage import DEFAULT_STORE, Store, default_store_url, open_store

CONFIG_FILE = "civicwatt.toml"  # read from the current directory by every verb but `demo`
DEFAULTS = {"registry": "./civicwatt.yaml", "store": DEFAULT_STORE, "quotas": "./quotas.yaml",
            "channels": "./channels.yaml", "users": "./users.yaml", "upstream": "./upstream.yaml"}
ENVIRONMENT = {"store": "CIVICWATT_STORE"}
SECRETS = ("CIVICWATT_SECRET_KEY", "CIVICWATT_INFLUX_TOKEN", "CIVICWATT_UPSTREAM_TOKEN")  # each also as NAME_FILE (a file holding it)


class WorkdirConfig(BaseModel):
    """`civicwatt.toml`: where a working directory keeps its files (paths relative to
    the file's directory)."""

    model_config = ConfigDict(extra="forbid")
    registry: str | None = None
    store: str | None = None
    quotas: str | None = None
    channels: str | None = None
    users: str | None = None
    upstream: str | None = None


_TOP_KEY = re.compile(r'^\s*"?([A-Za-z0-9_-]+)"?\s*=')


def load_workdir_config(path: str | Path) -> dict[str, str]:
    """The settings of a `civicwatt.toml`, its relative paths (embedded store URLs too)
    taken from the file's directory; ConfigError naming file, line and field."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        doc = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "-", f"cannot read file: {exc.strerror}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError([Problem(file, int(line.group(1)) if line else 0, "-",
                                   f"TOML syntax error: {exc}")]) from exc
    node = LineDict(doc)
    node.line, node.key_lines = 1, {}
    for n, line in enumerate(text.splitlines(), start=1):
        m = _TOP_KEY.match(line)
        if m and m.group(1) in doc:
            node.key_lines.setdefault(m.group(1), n)
    try:
        config = WorkdirConfig.model_validate(node)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(file, node, "", exc)) from exc
    here = path.parent
    out = {}
    for name, value in config.model_dump(exclude_none=True).items():
        if name == "store":
            out[name] = f"embedded:{here / value.removeprefix('embedded:')}" if value.startswith("embedded:") else value
        else:
            out[name] = str(here / value)
    return out


DEMO_MARK = "# Written by `civicwatt demo`"


def write_workdir_config(directory: str | Path, locations: Mapping[str, str]) -> tuple[Path, bool]:
    """Write `directory`/civicwatt.toml naming `locations` (registry, store, quotas,
    channels, users; paths relative to `directory` where they lie inside it). A file the
    demo did not write is left alone. Returns (the file, whether it now holds these)."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if path.exists() and not path.read_text(encoding="utf-8").startswith(DEMO_MARK):
        return path, False

    def rel(value: str) -> str:
        p = Path(value).resolve()
        return str(p.relative_to(directory.resolve())) if p.is_relative_to(directory.resolve()) else str(p)

    lines = [f"{DEMO_MARK}: where its files are. Every other civicwatt verb run in this directory",
             "# reads this file (paths are relative to it). Precedence: command line > environment",
             "# (CIVICWATT_STORE) > this file > defaults. Delete it to go back to the defaults."]
    for name in WorkdirConfig.model_fields:
        value = locations.get(name)
        if value is None:
            continue
        if name == "store":
            value = f"embedded:{rel(value.removeprefix('embedded:'))}" if value.startswith("embedded:") else value
        else:
            value = rel(value)
        lines.append(f"{name} = {json.dumps(value, ensure_ascii=False)}")  # a TOML basic string
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path, True


def resolve_locations(args: argparse.Namespace, names: Iterable[str], *,
                      defaults: Mapping[str, str] | None = None, discover: bool = True) -> None:
    """Fill each of `names` (registry, store, quotas, channels, users) that the command
    line left unset (absent or None) in `args`: from the environment (`CIVICWATT_STORE`),
    then `./civicwatt.toml`, then `defaults` (else DEFAULTS). `discover=False` skips the
    environment and the file (the demo keeps to its own directory). Where each value
    came from is kept in `args.origin` (name -> "command line", "CIVICWATT_STORE",
    "civicwatt.toml" or "default")."""
    origin = dict(getattr(args, "origin", {}))
    config: dict[str, str] | None = None
    for name in names:
        if getattr(args, name, None) is not None:
            origin.setdefault(name, "command line")
            continue
        value, source = None, "default"
        if discover and os.environ.get(ENVIRONMENT.get(name, "")):
            value, source = os.environ[ENVIRONMENT[name]], ENVIRONMENT[name]
        if value is None and discover:
            if config is None:
                config = load_workdir_config(CONFIG_FILE) if Path(CONFIG_FILE).is_file() else {}
            if name in config:
                value, source = config[name], CONFIG_FILE
        if value is None:
            value = (defaults or {}).get(name, DEFAULTS[name])
        setattr(args, name, value)
        origin[name] = source
    args.origin = origin


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The registry file, with the institutions lower-level instances reported to this
    one (纵向直报: `storage.upstream.UpstreamBook` in the store's data directory), each
    marked with its source instance."""
    path = Path(getattr(args, "registry", None) or DEFAULTS["registry"])
    if not path.exists():
        raise ConfigError([Problem(str(path), 0, "-", "registry file not found (run `civicwatt init` to write a "
                                                      f"sample){_origin_note(args, 'registry')}")])
    registry = load_registry(path)
    store = getattr(args, "store", None)
    if not store:
        return registry
    from alerts.outbox import default_outbox_dir

    return with_reported_institutions(registry, default_outbox_dir(store, path.parent))


def with_reported_institutions(registry: Registry, directory: str | Path) -> Registry:
    """`core.registry.with_reported` with what the upstream book in `directory` holds."""
    from storage.upstream import UpstreamBook

    book = UpstreamBook.existing(directory)
    if book is None:
        return registry
    try:
        return with_reported(registry, book.institutions())
    finally:
        book.close()


def _origin_note(args: argparse.Namespace, name: str) -> str:
    """Where a location came from, for error messages: "" (command line), else e.g.
    " (from CIVICWATT_STORE)" or " (the default: ...)"."""
    source = getattr(args, "origin", {}).get(name)
    if source == "default":
        others = [f"--{name}", *([ENVIRONMENT[name]] if name in ENVIRONMENT else []), f"./{CONFIG_FILE}"]
        return f" (the default: no {', '.join(others[:-1])} or {others[-1]} names one)"
    return f" (from {source})" if source and source != "command line" else ""


def print_problems(exc: ConfigError) -> int:
    """Every problem of a refused file on stderr, then their number; the exit code (1)."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
    return 1


def missing_store_message(args: argparse.Namespace, exc: Exception) -> str:
    """What a verb says when its store does not exist (only import, collect and demo
    create one)."""
    return (f"{exc}{_origin_note(args, 'store')}. Only `civicwatt import`, `collect` and `demo` create a store: "
            f"give --store URL, set CIVICWATT_STORE, or run where a {CONFIG_FILE} names the store")


def load_file_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """For each of SECRETS unset in the environment whose NAME_FILE is set, read that
    file (surrounding whitespace stripped) into NAME, so everything downstream (the
    dashboard's session key, `open_registry_store`) sees one variable. Returns the
    names read; ConfigError naming the variable and file when one cannot be read or is empty."""
    env = os.environ if environ is None else environ
    done = []
    for name in SECRETS:
        path = env.get(f"{name}_FILE")
        if env.get(name) or not path:
            continue
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([Problem(path, 0, f"{name}_FILE", f"cannot read the secret: {exc.strerror}")]) from exc
        if not value:
            raise ConfigError([Problem(path, 0, f"{name}_FILE", "the secret file is empty")])
        env[name] = value
        done.append(name)
    return done


def with_influx_token(url: str, environ: Mapping[str, str] | None = None) -> str:
    """`url` with `token=$CIVICWATT_INFLUX_TOKEN` added when it is an InfluxDB URL
    without credentials (no USER:PASSWORD@, no token=) and the variable is set."""
    env = os.environ if environ is None else environ
    token = env.get("CIVICWATT_INFLUX_TOKEN")
    if not token or not url.startswith(("influxdb://", "influxdbs://")):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if parts.username or any(k == "token" for k, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("token", token)])))


def redact_url(url: str) -> str:
    """A store URL fit for logs and banners: password and token replaced by ***."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("influxdb"):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(f"{k}=***" if k == "token" else f"{k}={v}" for k, v in parse_qsl(parts.query))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def open_registry_store(registry: Registry, url: str | None, create: bool = True) -> Store:
    """The store at `url` (None: $CIVICWATT_STORE or the embedded default), with the
    InfluxDB token of the environment (`with_influx_token`), in the registry's time
    zone, told each meter's multiplier and register maximum.
    `create=False`: StoreMissing when there is no store at `url` (nothing is created)."""
    store = open_store(with_influx_token(url or default_store_url()), tz=registry.timezone, create=create)
    store.set_meters(registry.meters_frame())
    return store


def load_optional_quotas(path: str | None, registry: Registry):
    """The quota file when it exists (None otherwise); errors raise ConfigError."""
    if not path or not Path(path).exists():
        return None
    from quotas.config import load_quotas

    return load_quotas(path, registry)


def load_optional_upstream(path: str | None):
    """The upstream file (`core.schemas.upstream`) when it exists (None otherwise); errors
    raise ConfigError with file, line and field."""
    if not path or not Path(path).exists():
        return None
    from core.schemas.upstream import load_upstream

    return load_upstream(path)


def output_path(arg: str, suffixes: tuple[str, ...], wrong_suffix: str) -> Path:
    """`--out` as a Path, refused (ConfigError) unless it ends in one of `suffixes` and
    its directory exists; `wrong_suffix` is the message for a wrong ending."""
    out = Path(arg)
    if out.suffix.lower() not in suffixes:
        raise ConfigError([Problem("<command line>", 0, "--out", wrong_suffix)])
    if not out.parent.is_dir():
        raise ConfigError([Problem("<command line>", 0, "--out", f"no such directory: {out.parent}")])
    return out
