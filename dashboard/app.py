"""The energy managers' dashboard: a Flask server with Dash mounted on it.

`create_app(registry, store, users_file, ...)` returns the `dash.Dash` app;
`serve(app, host, port)` runs it in a thread with a werkzeug server that `shutdown()`
stops (what `civicwatt demo` and `civicwatt serve` use).

`create_app` only wires the parts together: sign-in and the guard in front of every
request (`dashboard.login`), the downloads (`dashboard.downloads`), the frame and
router (`dashboard.shell`) and each page of `dashboard.pages.PAGES`, all sharing one
`dashboard.context.Context`. Every callback and download re-reads the signed-in user
and scopes its data with `dashboard.access` (admin: everything; region manager: their
region's subtree; institution user: their institution); anything else gets the "no
access" message (callbacks) or 403 (downloads), whatever the request says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import flask
import pandas as pd
from werkzeug.serving import WSGIRequestHandler, make_server

from core.registry import Registry
from dashboard import downloads, integrations, login, shell
from dashboard.context import Context
from dashboard.data import DataService
from dashboard.pages import PAGES


def default_mv_dirs(registry: Registry, data_dir: Path | None) -> list[Path]:
    """`mv/` next to the registry file and in the data directory."""
    source = Path(registry.source)
    return [p / "mv" for p in (source.parent if source.is_file() else None, data_dir) if p is not None]


def create_app(registry: Registry, store: Any, users_file: str | Path, quotas_path: str | Path | None = None,
               data_dir: str | Path | None = None, secret_key: str | None = None,
               now: Callable[[], pd.Timestamp] | None = None, cache_ttl_s: float = 300.0,
               mv_dirs: list[str | Path] | None = None) -> dash.Dash:
    """The dashboard for `registry` over `store`.

    users_file: the YAML written by `civicwatt users` (see dashboard.auth);
    quotas_path: quotas.yaml (dual-control targets, quota standards), optional;
    data_dir: where alerts (the outbox) live and the session key is kept;
    now: a clock (tests); cache_ttl_s: how long year tables are reused;
    mv_dirs: folders of savings-verification project files (default: `mv/` next to
    the registry file and in data_dir).
    """
    users_file = Path(users_file)
    data_path = Path(data_dir) if data_dir is not None else None
    quotas = integrations.Quotas(quotas_path, registry)
    quotas.config()  # a bad quota file fails here, with every problem, not in a callback
    dirs = default_mv_dirs(registry, data_path) if mv_dirs is None else [Path(d) for d in mv_dirs]
    service = DataService(registry, store, quotas=quotas.config, cache_ttl_s=cache_ttl_s,
                          **({"now": now} if now is not None else {}))
    directory = login.UserDirectory(users_file)
    sessions = login.Sessions(directory)
    c = Context(registry=registry, store=store, service=service, quotas=quotas,
                mv=integrations.MVProjects(dirs, registry, store), data_dir=data_path,
                current_user=sessions.current_user)

    server = flask.Flask(__name__)
    login.register(server, sessions, login.secret_key(secret_key, data_path, users_file))
    downloads.register(server, c)
    app = dash.Dash(__name__, server=server, suppress_callback_exceptions=True, title="CivicWatt",
                    update_title=None, assets_folder=str(Path(__file__).parent / "assets"))
    shell.register(app, c, PAGES)
    for page in PAGES:
        page.register(app, c)
    app.service = service  # for tests and the benchmark: the data service and its caches
    app.users = directory
    return app


class _QuietHandler(WSGIRequestHandler):
    """No line per request on the console (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServerHandle:
    """A dashboard served from a background thread; `shutdown()` stops it."""

    def __init__(self, app: dash.Dash, host: str, port: int, quiet: bool = True):
        self._server = make_server(host, port, app.server, threaded=True,
                                   request_handler=_QuietHandler if quiet else WSGIRequestHandler)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="civicwatt-dashboard", daemon=True)

    def start(self) -> ServerHandle:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


def serve(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, quiet: bool = True) -> ServerHandle:
    """Serve `app` from a thread (port 0: any free port); returns the running handle.
    `quiet`: no access log line per request."""
    return ServerHandle(app, host, port, quiet).start()
