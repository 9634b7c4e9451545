"""`civicwatt init [DIR]`: write a commented sample civicwatt.yaml, quotas.yaml and channels.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

from civicwatt.sample import write_sample


def run(args: argparse.Namespace) -> int:
    written = write_sample(Path(args.dir), force=args.force)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing written: {args.dir} already has civicwatt.yaml, quotas.yaml and channels.yaml (use --force to overwrite)")
    return 0
