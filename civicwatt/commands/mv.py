"""`civicwatt mv --project FILE.yaml --out FILE.xlsx`: savings verification report.

Every problem (project file, driver CSVs) is printed with file, line and field; data
that do not allow a verification (verification.InsufficientData) are printed one line
each as "insufficient data: FILE:LINE: FIELD: message". Either way the exit code is 1,
there is no traceback and no report is written.
"""

from __future__ import annotations

import argparse
import sys

from civicwatt.context import open_registry_store, registry_from_args
from verification import InsufficientData, MVResult, load_project, verify, write_report


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.0f}"
    return str(value)


def _verify(args: argparse.Namespace) -> MVResult:
    registry = registry_from_args(args)
    project = load_project(args.project, registry)
    store = open_registry_store(registry, args.store, create=False)
    try:
        return verify(project, store)
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    try:
        result = _verify(args)
    except InsufficientData as exc:
        for problem in exc.problems:
            print(f"insufficient data: {problem}", file=sys.stderr)
        return 1
    project = result.project
    out = write_report(result, args.out)
    s = result.summary
    print(f"{project.id}: {s['model']} (n={s['n']}, p={s['p']}, R²={s['r2']:.3f}, CV(RMSE)={s['cvrmse']:.1%}, "
          f"NMBE={s['nmbe']:.2%}, ASHRAE 14 {'met' if s['meets_ashrae14'] else 'NOT met'})")
    print(f"avoided {_fmt(s['avoided'])} {s['unit']} ({s['avoided_fraction']:.1%}); "
          f"90 % interval {_fmt(s['avoided_low90'])}..{_fmt(s['avoided_high90'])}; {s['verdict']}")
    if s.get("normalized_savings") is not None:
        print(f"normalized savings {_fmt(s['normalized_savings'])} {s['unit']}; 90 % interval "
              f"{_fmt(s['normalized_low90'])}..{_fmt(s['normalized_high90'])}")
    if s.get("payment_cny") is not None:
        print(f"payment due ({s['contract_type']}): {s['payment_cny']:,.2f} CNY ({s['payment_basis']})")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"report written to {out}")
    return 0
