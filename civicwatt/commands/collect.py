"""`civicwatt collect`: the production runtime: polling, alert checks and delivery.

    civicwatt collect [--shard I/N] [--queue DIR] [--gateways FILE] [--interval S]
                      [--quotas FILE] [--channels FILE] [--check-interval S] [--no-alerts]

Everything runs in one `civicwatt.runtime.Runtime` (the one `civicwatt demo` runs too):
the meters are polled on schedule into the store; the alert rules run at start-up and
then every `--check-interval` seconds (default 900: meter-data rules each time, the
quota rules of `--quotas` at start-up, on a new day and hourly), and alerts go to the
channels of `--channels` with retries. `--no-alerts` makes a pure collector; with
`--shard I/N` only shard 1 runs the checks. The
heartbeat for `GET /healthz` is DATA_DIR/health/NAME.json (`core.health`).

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
import time
from pathlib import Path
from typing import Any

from alerts.channels import load_channels
from civicwatt.context import (
    load_optional_quotas,
    load_optional_upstream,
    open_registry_store,
    redact_url,
    registry_from_args,
)
from collectors.queue import QueueBusy
from core.schemas.gateways import GatewaysFile
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, validate_node

log = logging.getLogger("civicwatt.collect")


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
    from alerts.outbox import default_outbox_dir
    from civicwatt.runtime import Runtime
    from collectors.shard import parse_shard

    try:
        shard = parse_shard(args.shard)
    except ValueError as exc:
        raise ConfigError([Problem("<command line>", 0, "--shard", str(exc))]) from exc
    if args.interval is not None and args.interval < 1:
        raise ConfigError([Problem("<command line>", 0, "--interval", "must be at least 1 second")])
    if args.check_interval < 1:
        raise ConfigError([Problem("<command line>", 0, "--check-interval", "must be at least 1 second")])
    registry = registry_from_args(args)
    gateways = load_gateway_options(args.gateways) if getattr(args, "gateways", None) else None
    checks = not args.no_alerts and shard[0] == 1
    quotas = load_optional_quotas(args.quotas, registry) if checks else None
    channels = load_channels(args.channels) if checks and args.channels and Path(args.channels).exists() else None
    store = open_registry_store(registry, args.store)
    queue_dir = args.queue or ("./civicwatt-queue" if shard == (1, 1) else f"./civicwatt-queue-{shard[0]}of{shard[1]}")
    data_dir = default_outbox_dir(store.url, Path(args.registry).parent)
    try:
        rt = Runtime(registry, store, queue_dir, data_dir, shard=shard, gateway_options=gateways,
                     interval_s=args.interval, quotas=quotas, channels=channels, check_interval_s=args.check_interval,
                     alerts=not args.no_alerts, upstream=load_optional_upstream(getattr(args, "upstream", None)))
    except QueueBusy as exc:
        store.close()
        raise ConfigError([Problem("<command line>", 0, "--queue", str(exc))]) from None
    service = rt.collector
    if rt.runs_checks:
        alerts_note = (f"alert checks every {args.check_interval:g} s, "
                       + (f"quotas {args.quotas}" if quotas is not None else f"no quota file {args.quotas}: meter rules only")
                       + (f", channels {args.channels}" if channels is not None else
                          f", no channels file {args.channels}: alerts kept in the outbox")
                       + f", outbox {data_dir}")
    else:
        alerts_note = f"alert checks {rt.checks_off}"
    rt.start()
    log.info("%d meters behind %d gateways (shard %d/%d) -> %s; queue %s (%d queued from before); %s; "
             "heartbeat %s. Ctrl-C stops.", len(service.meter_ids), len(service.pollers), *shard,
             redact_url(store.url), queue_dir, service.queue.backlog(), alerts_note, rt.heartbeat.path)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    log.info("stopping, sending the queue to the store ...")
    empty = rt.stop(flush_timeout_s=30.0)
    left = service.queue.backlog()
    stats = service.stats
    log.info("%d samples polled, %d failed polls; %s", stats["ok"], stats["failed"],
             "queue empty." if empty else f"{left} samples stay queued in {queue_dir} for the next start.",
             extra={"ok": stats["ok"], "failed": stats["failed"], "queued": left})
    rt.close()
    store.close()
    return 0
