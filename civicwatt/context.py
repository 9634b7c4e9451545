"""Opening what every verb needs: the registry and the store, wired together."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.registry import Registry, load_registry
from core.yamlfile import ConfigError, Problem
from storage import Store, open_store


def registry_from_args(args: argparse.Namespace) -> Registry:
    path = Path(getattr(args, "registry", "./civicwatt.yaml"))
    if not path.exists():
        raise ConfigError([Problem(str(path), 0, "-", "registry file not found (run `civicwatt init` to write a sample)")])
    return load_registry(path)


def open_registry_store(registry: Registry, url: str | None) -> Store:
    """The store at `url` (None: $CIVICWATT_STORE or the embedded default), in the
    registry's time zone, told each meter's multiplier and register maximum."""
    store = open_store(url, tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    return store


def load_optional_quotas(path: str | None, registry: Registry):
    """The quota file when it exists (None otherwise); errors raise ConfigError."""
    if not path or not Path(path).exists():
        return None
    from quotas.config import load_quotas

    return load_quotas(path, registry)


def output_path(arg: str, suffixes: tuple[str, ...], wrong_suffix: str) -> Path:
    """`--out` as a Path, refused (ConfigError) unless it ends in one of `suffixes` and
    its directory exists; `wrong_suffix` is the message for a wrong ending."""
    out = Path(arg)
    if out.suffix.lower() not in suffixes:
        raise ConfigError([Problem("<command line>", 0, "--out", wrong_suffix)])
    if not out.parent.is_dir():
        raise ConfigError([Problem("<command line>", 0, "--out", f"no such directory: {out.parent}")])
    return out
