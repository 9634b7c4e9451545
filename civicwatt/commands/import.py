"""`civicwatt import readings|bills FILE.csv [--replace --reason TEXT]`: all or nothing.

Every problem in the file is listed by line and field and nothing is written; a reading
that would change a value already stored is a problem too, and so is a bill that differs
from the stored bill of its institution, energy and period, unless `--replace` (bills are
append-only with explicit correction), or whose period overlaps another. The work is
`storage.imports` (shared with the API's POST /api/v1/readings and /bills); bills imported
or replaced are recorded in the audit trail (`storage.submissions`: who, when, old -> new,
source `import`). The last line says how many rows were new, identical to what was
stored (re-importing a file changes nothing), replaced (bills, with --replace) or rejected.
A readings file is read block by block, so memory is bounded by a block, not by the file
(`storage.imports.import_readings`).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from tqdm import tqdm

from alerts.outbox import default_outbox_dir
from civicwatt.context import open_registry_store, print_problems, registry_from_args
from core.yamlfile import ConfigError
from storage import Imported, ImportRejected
from storage.imports import import_bills, import_readings
from storage.submissions import SubmissionBook


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    started = time.perf_counter()
    print(f"checking {args.file} ...", file=sys.stderr)
    store = open_registry_store(registry, args.store)
    book = None
    with tqdm(desc=f"import {args.kind}", unit="row", unit_scale=True, file=sys.stderr) as bar:
        try:
            if args.kind == "readings":
                done = import_readings(store, registry, args.file, progress=bar.update)
            else:
                book = SubmissionBook(default_outbox_dir(store.url, Path(args.registry).parent))
                done = import_bills(store, registry, args.file, replace=args.replace, book=book, who=os_user(),
                                    source="import", reason=args.reason)
                bar.update(done.new + done.identical + done.replaced)
        except ConfigError as exc:  # the file itself: every problem by line and field
            code = print_problems(exc)
            _refused(args, len({p.line for p in exc.problems}))
            return code
        except ImportRejected as exc:  # rows that conflict with what is stored
            for problem in exc.located:
                print(problem, file=sys.stderr)
            _refused(args, len({p.line for p in exc.located}) or exc.rejected)
            return 1
        finally:
            store.close()
            if book is not None:
                book.close()
    audit = " (old values in the audit trail)" if done.replaced else ""
    print(f"imported {args.kind} from {args.file} into {store.url} in {time.perf_counter() - started:.1f} s{audit}: "
          f"{counts(done)}")
    return 0


def counts(result: Imported, rejected: int = 0) -> str:
    """`new N, identical N[, replaced N], rejected N`."""
    replaced = f", replaced {result.replaced:,}" if result.replaced else ""
    return f"new {result.new:,}, identical {result.identical:,}{replaced}, rejected {rejected:,}"


def _refused(args: argparse.Namespace, rejected: int) -> None:
    print(f"rejected: nothing was imported from {args.file}: {counts(Imported(0, 0), rejected)} "
          "(rows with a problem; a file is imported whole or not at all)", file=sys.stderr)


def os_user() -> str:
    """Who runs the import, for the audit trail (the login name, else 'cli')."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"
