"""The web server of `serve` and `demo`: the dashboard with the HTTP API.

The web server of `civicwatt serve` and `civicwatt demo`: the dashboard with the HTTP API
(/api/v1) and GET /healthz mounted on the same Flask server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dash

from api.app import mount
from api.framework import ApiContext
from dashboard.app import create_app


def create_web_app(registry: Any, store: Any, users_file: str | Path, **dashboard_options: Any) -> dash.Dash:
    """`dashboard.app.create_app(...)` plus the API on its server, sharing its year tables,
    quota file and data directory (the outbox, the heartbeats); `app.api` is the `api.framework.Api`."""
    app = create_app(registry, store, users_file, **dashboard_options)
    data_dir = dashboard_options.get("data_dir")
    ctx = ApiContext(store=store, users_file=Path(users_file), tables=app.service,
                     quotas=app.service.quotas, data_dir=Path(data_dir) if data_dir is not None else None)
    app.api = mount(app.server, ctx)
    return app


def announce_ready(app: dash.Dash, message: str = "dashboard ready: first pages prepared in {s:.0f} s") -> threading.Thread:
    """Print `message` (`{s}`: its seconds) when the dashboard's start-up warm-up
    (`dashboard.warmup`) is done: from then on the first pages are drawn from memory."""
    def wait() -> None:
        app.warmup.wait()
        print(message.format(s=app.warmup.seconds or 0.0), flush=True)
    thread = threading.Thread(target=wait, name="civicwatt-ready", daemon=True)
    thread.start()
    return thread
