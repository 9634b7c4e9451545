"""`civicwatt serve`: the dashboard, the HTTP API and /healthz.

`civicwatt serve`: the dashboard, the HTTP API (/api/v1) and /healthz, on the registry and store given;
with an upstream file, also the push of approved months to the upper level (`civicwatt.upstream`)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from alerts.outbox import default_outbox_dir
from civicwatt.context import load_optional_upstream, open_registry_store, registry_from_args
from civicwatt.upstream import UpstreamPusher, start_pusher
from civicwatt.web import create_web_app
from core.users import ensure_admin, load_users
from dashboard.app import serve


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
    upstream = load_optional_upstream(getattr(args, "upstream", None))
    app = create_web_app(registry, store, users_file, quotas_path=quotas, data_dir=data_dir)
    handle = serve(app, args.host, args.port)
    stop = threading.Event()
    if upstream is not None:
        start_pusher(UpstreamPusher(upstream, store, registry, data_dir), stop)
        print(f"pushing approved months to {upstream.url} as {upstream.instance} every {upstream.interval_s:g} s")
    print(f"dashboard on {handle.url}, API on {handle.url}/api/v1 (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        handle.shutdown()
        store.close()
    return 0
