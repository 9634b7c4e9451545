"""`civicwatt quotas check [--date YYYY-MM-DD] [--notify]`: targets, standards and alerts.

It evaluates the dual-control targets, quota standards and meter-data rules, prints
the targets' status and every alert; with `--notify`, it hands the alerts to the
persistent outbox (de-duplicated: an alert already open is not sent again, one that
cleared gets its resolved message) and delivers through the channels of `--channels`
(when the file exists).

`--date` is the evaluation date (data before it count; default today). Exit status 0
whether or not alerts were found; 1 for configuration errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from civicwatt.context import load_optional_quotas, open_registry_store, registry_from_args
from core.yamlfile import ConfigError, Problem

MISSING = "—"  # printed for a value that cannot be computed (no data, no denominator)


def _num(x: float) -> str:
    """`x` with thousands separators and two decimals, or "—" when missing."""
    return MISSING if x is None or pd.isna(x) else f"{x:,.2f}"


def _target_lines(targets: pd.DataFrame) -> list[str]:
    """One line per target and indicator: values in the indicator's unit (tce, m3,
    tCO2, kgce/m2, kgce/person, m3/person, kgCO2/m2), "—" where a value is missing."""
    if targets is None or targets.empty:
        return []
    return [f"{'target':<20} {'scope':<32} {'indicator':<20} {'unit':<12} {'actual':>14} {'limit':>14} "
            f"{'projected':>14}  status"] + [
        f"{r.target_id:<20} {r.scope:<32} {r.indicator:<20} {r.unit:<12} {_num(r.actual):>14} "
        f"{_num(r.limit):>14} {_num(r.projected):>14}  {r.status}" for r in targets.itertuples(index=False)]


def run(args: argparse.Namespace) -> int:
    from alerts.rules import evaluate_alerts

    registry = registry_from_args(args)
    at = None
    if args.date:
        try:
            at = pd.Timestamp(args.date).date()
        except ValueError as exc:
            raise ConfigError([Problem("<command line>", 0, "--date", f"not a date: {args.date!r}")]) from exc
    quotas = load_optional_quotas(args.quotas, registry)
    if quotas is None:
        print(f"{args.quotas}: not found; only the meter-data rules are evaluated", file=sys.stderr)
    channels = None
    if args.notify and args.channels and Path(args.channels).exists():
        from alerts.channels import load_channels  # (HTTP clients: only when notifying)

        channels = load_channels(args.channels)
    details: dict = {}
    with open_registry_store(registry, args.store, create=False) as store:
        alerts = evaluate_alerts(store, registry, quotas, at, details=details)
        store_url = store.url
    # one write: a province prints ~100,000 lines, and stdout may be unbuffered
    lines = [*_target_lines(details.get("targets")), f"{len(alerts)} alert(s)"]
    for a in alerts:
        lines += [f"[{a.severity}] {a.rule} {a.scope} {a.period}: {a.message_en}", f"    {a.message_zh}"]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    if args.notify:
        from alerts.outbox import Outbox, default_outbox_dir

        directory = Path(args.outbox) if args.outbox else default_outbox_dir(store_url, Path(args.registry).parent)
        outbox = Outbox(directory, channels)
        res = outbox.submit(alerts)
        sent = outbox.deliver_pending()
        print(f"outbox {directory}: {len(res.opened)} opened, {len(res.reminded)} reminded, "
              f"{len(res.resolved)} resolved; {sent.sent} notification(s) sent, {sent.failed} failed, "
              f"{sent.pending} queued" + ("" if channels else f" (no channels file {args.channels})"))
        for err in sent.errors:
            print(f"  delivery failed: {err}", file=sys.stderr)
    return 0
