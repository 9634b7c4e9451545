"""`civicwatt check-config`: validate the registry and quota files, print every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.registry import validate_registry_doc
from core.yamlfile import ConfigError, Problem, load_yaml


def check(registry_path: str, quotas_path: str | None) -> list[Problem]:
    """Every problem of the registry and (if present) the quota file."""
    try:
        registry, problems = validate_registry_doc(load_yaml(registry_path), registry_path)
    except ConfigError as exc:
        return exc.problems
    if quotas_path and Path(quotas_path).exists():
        if registry is None:
            problems.append(Problem(quotas_path, 0, "-", "not checked: fix the registry first"))
        else:
            from quotas.config import validate_quotas_file

            problems.extend(validate_quotas_file(quotas_path, registry))
    return problems


def run(args: argparse.Namespace) -> int:
    if not Path(args.registry).exists():
        print(f"{args.registry}:0: -: registry file not found (run `civicwatt init`)", file=sys.stderr)
        return 1
    problems = check(args.registry, args.quotas)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.registry}: OK" + (f"; {args.quotas}: OK" if Path(args.quotas).exists() else ""))
    return 0
