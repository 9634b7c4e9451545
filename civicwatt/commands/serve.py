"""`civicwatt serve`: only the dashboard, on the registry and store given."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from alerts.outbox import default_outbox_dir
from civicwatt.context import open_registry_store, registry_from_args
from core.users import ensure_admin, load_users
from dashboard.app import create_app, serve


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    store = open_registry_store(registry, args.store, create=False)
    users_file = Path(args.users)
    created = ensure_admin(users_file)
    if created:
        print(f"created user admin in {users_file} with password: {created}")
    print(f"{len(load_users(users_file))} dashboard user(s) in {users_file} "
          "(`civicwatt users passwd admin --generate` sets a new admin password)")
    # the same outbox `civicwatt quotas check --notify` writes to
    data_dir = default_outbox_dir(store.url, Path(args.registry).parent)
    quotas = Path(args.quotas) if args.quotas and Path(args.quotas).exists() else None
    app = create_app(registry, store, users_file, quotas_path=quotas, data_dir=data_dir)
    handle = serve(app, args.host, args.port)
    print(f"dashboard on {handle.url} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.shutdown()
        store.close()
    return 0
