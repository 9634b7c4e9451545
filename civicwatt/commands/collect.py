"""`civicwatt collect`: poll the registry's Modbus meters on schedule into the store.

    civicwatt collect [--shard I/N] [--queue DIR] [--gateways FILE] [--interval S]

Samples go through an on-disk queue (`--queue`, default ./civicwatt-queue, or
./civicwatt-queue-IofN for a shard) so a store outage or a crash loses nothing; Ctrl-C
(or SIGTERM) stops polling, commits and tries to send the queue to the store.

`--gateways FILE` sets per-gateway options (key `host:port`, or `"*"` for all):

    "*": {timeout_s: 1.0, retries: 1, backoff_s: 0.05, connections: 1}
    "10.1.2.3:502": {max_registers: 4, pause_s: 0.1, fail_fast_after: 3}
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from civicwatt.context import open_registry_store, registry_from_args
from core.schemas.gateways import GatewaysFile
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node


def load_gateway_options(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per-gateway options from YAML (schema: `core.schemas.gateways.GatewaysFile`), by
    gateway key, each with the options the file sets; ConfigError naming file, line and field."""
    file = str(path)
    doc = load_yaml(path)
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(file, 1, "-", "expected a mapping of 'host:port' (or '*') to options")])
    problems: list[Problem] = []
    parsed = validate_node(GatewaysFile, doc, file, "", problems)
    if parsed is None:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return {key: opts.model_dump(exclude_unset=True) for key, opts in parsed.root.items()}


def run(args: argparse.Namespace) -> int:
    from collectors.service import CollectorService
    from collectors.shard import parse_shard

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per poll job is noise
    try:
        shard = parse_shard(args.shard)
    except ValueError as exc:
        raise ConfigError([Problem("<command line>", 0, "--shard", str(exc))]) from exc
    if args.interval is not None and args.interval < 1:
        raise ConfigError([Problem("<command line>", 0, "--interval", "must be at least 1 second")])
    registry = registry_from_args(args)
    gateways = load_gateway_options(args.gateways) if getattr(args, "gateways", None) else None
    store = open_registry_store(registry, args.store)
    queue_dir = args.queue or ("./civicwatt-queue" if shard == (1, 1) else f"./civicwatt-queue-{shard[0]}of{shard[1]}")
    service = CollectorService(registry, store, queue_dir, shard=shard, gateway_options=gateways,
                               interval_s=args.interval)
    service.start()
    print(f"civicwatt collect: {len(service.meter_ids)} meters behind {len(service.pollers)} gateways "
          f"(shard {shard[0]}/{shard[1]}) -> {store.url}; queue {queue_dir}; "
          f"{service.queue.backlog()} queued from before. Ctrl-C stops.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    print("civicwatt collect: stopping, sending the queue to the store ...", file=sys.stderr, flush=True)
    empty = service.stop(flush_timeout_s=30.0)
    left = service.queue.backlog()
    print(f"civicwatt collect: {service.stats['ok']} samples polled, {service.stats['failed']} failed polls; "
          + ("queue empty." if empty else f"{left} samples stay queued in {queue_dir} for the next start."),
          file=sys.stderr, flush=True)
    service.queue.close()
    store.close()
    return 0
