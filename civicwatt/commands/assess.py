"""`civicwatt assess --year YYYY --out FILE.xlsx [--notice FILE.xlsx|FILE.html]`: the year-end assessment (节能考核).

Scores every institution and region for a complete year with the quota file's scheme
(`--quotas`; without one the documented defaults apply: no targets, no standards),
counting the open data-quality alerts of the outbox (`--outbox`, default the embedded
store's directory, else the registry's; none when it holds no outbox), and writes the
assessment workbook; `--notice` also writes the notice (通报) as a workbook, or as the
printable HTML page with `.html`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from civicwatt.context import load_optional_quotas, open_registry_store, output_path, registry_from_args
from core.yamlfile import ConfigError, Problem


def run(args: argparse.Namespace) -> int:
    from alerts.outbox import DB_NAME, Outbox, default_outbox_dir
    from alerts.quality import open_quality_alerts
    from reports.assessment import build_assessment, notice_html, write_assessment, write_notice

    out = output_path(args.out, (".xlsx",), "the assessment is written as .xlsx")
    notice = output_path(args.notice, (".xlsx", ".html"), "the notice is written as .xlsx or .html") \
        if args.notice else None
    registry = registry_from_args(args)
    today = pd.Timestamp.now(tz=registry.timezone)
    if not 1990 <= args.year < today.year:
        raise ConfigError([Problem("<command line>", 0, "--year",
                                   f"{args.year} is not a complete year (the assessment covers a year that is over)")])
    quotas = load_optional_quotas(getattr(args, "quotas", None), registry)
    started = time.monotonic()
    with open_registry_store(registry, args.store, create=False) as store:
        directory = Path(args.outbox) if args.outbox else default_outbox_dir(store.url, Path(args.registry).parent)
        alerts = Outbox(directory).list_alerts(open_only=True) if (directory / DB_NAME).exists() else []
        report = build_assessment(store, registry, quotas, args.year,
                                  open_quality_alerts(alerts, args.year, registry.timezone))
    write_assessment(report, out)
    if notice is not None:
        if notice.suffix.lower() == ".html":
            notice.write_text(notice_html(report), encoding="utf-8")
        else:
            write_notice(report, notice)
    a = report.assessment
    grades = a.institutions["grade"].value_counts()
    print(f"wrote {out}" + (f" and {notice}" if notice else "") + f": {args.year}, {len(a.institutions):,} "
          f"institutions (" + ", ".join(f"{g} {grades.get(g, 0)}" for g in [x.name for x in report.config.assessment.grades])
          + f"), {len(a.key_users):,} key energy users, {len(a.notice):,} notice entries "
          f"in {time.monotonic() - started:.1f}s")
    return 0
