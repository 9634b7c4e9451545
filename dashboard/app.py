"""The energy managers' dashboard: a Flask server with Dash mounted on it.

`create_app(registry, store, users_file, ...)` returns the `dash.Dash` app;
`serve(app, host, port)` runs it in a thread with a werkzeug server that `shutdown()`
stops (what `civicwatt demo` and `civicwatt serve` use).

`create_app` only wires the parts together: sign-in and the guard in front of every
request (`dashboard.login`), the downloads (`dashboard.downloads`), the frame and
router (`dashboard.shell`) and each page of `dashboard.pages.PAGES`, all sharing one
`dashboard.context.Context`. Every callback and download re-reads the signed-in user
and scopes its data with `core.access` (admin: everything; region manager: their
region's subtree; institution user: their institution); anything else gets the "no
access" message (callbacks) or 403 (downloads), whatever the request says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import flask
import pandas as pd
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from core.registry import Registry
from dashboard import downloads, integrations, login, shell
from dashboard.context import Context
from dashboard.data import DataService
from dashboard.pages import PAGES
from dashboard.warmup import WarmUp

log = logging.getLogger(__name__)
CALLBACK_PATH = "/_dash-update-component"


def default_mv_dirs(registry: Registry, data_dir: Path | None) -> list[Path]:
    """`mv/` next to the registry file and in the data directory."""
    source = Path(registry.source)
    return [p / "mv" for p in (source.parent if source.is_file() else None, data_dir) if p is not None]


def content_security_policy(script_hashes: list[str]) -> str:
    """The CSP every response carries: scripts only from this site plus Dash's own inline
    renderer script (by hash); inline styles are allowed (React and Plotly set them),
    nothing may frame the pages, forms post only here."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' " + " ".join(script_hashes),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


PLOTLY_BUNDLE = Path(__file__).parent / "vendor" / "plotly-basic.min.js"  # see vendor/README.md
PLOTLY_URL = "/_dash-component-suites/plotly/package_data/plotly.min.js"  # where dcc.Graph loads Plotly from


def partial_plotly(server: flask.Flask, bundle: Path = PLOTLY_BUNDLE) -> None:
    """Serve plotly.js's partial "basic" bundle (1.2 MB: `bar`, `scatter`, `pie`, every trace type the
    dashboard draws) where dcc.Graph loads Plotly from, instead of the full 4.8 MB bundle
    of the `plotly` package: a cold page with charts spent about 1.5 s of its main
    thread evaluating the full one (benchmarks/bench_pages.py --breakdown). Dash's
    renderer asks for that fixed URL when a first chart is drawn (serve_locally);
    were it ever to ask for another, the full bundle would be served and the pages
    would only be slower."""

    @server.before_request
    def _plotly() -> flask.Response | None:
        if flask.request.path != PLOTLY_URL:
            return None
        return flask.send_file(bundle, mimetype="application/javascript", max_age=0, conditional=True)


def security_headers(server: flask.Flask, csp: str) -> None:
    """Headers on every response: no framing, no MIME sniffing, the CSP, referrers kept
    on this site, and HSTS when the request came over TLS."""

    @server.after_request
    def add_headers(resp: flask.Response) -> flask.Response:
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = csp
        resp.headers["Referrer-Policy"] = "same-origin"
        if flask.request.is_secure:
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        return resp


def callback_errors(server: flask.Flask) -> None:
    """A callback request that still fails after the pages' input checks
    (`dashboard.inputs`), e.g. a malformed Dash request body, is answered 400 and
    logged with its traceback: bad input is never a 500."""

    @server.errorhandler(Exception)
    def bad_callback(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return exc
        if flask.request.path != CALLBACK_PATH:
            raise exc
        log.error("callback request failed: answered 400", exc_info=exc)
        return flask.Response("bad callback request", status=400, mimetype="text/plain")


def create_app(registry: Registry, store: Any, users_file: str | Path, quotas_path: str | Path | None = None,
               data_dir: str | Path | None = None, secret_key: str | None = None,
               now: Callable[[], pd.Timestamp] | None = None, cache_ttl_s: float = 300.0,
               mv_dirs: list[str | Path] | None = None, behind_proxy: bool | None = None,
               secure_cookies: bool | None = None, login_throttle: login.LoginThrottle | None = None) -> dash.Dash:
    """The dashboard for `registry` over `store`.

    users_file: the YAML written by `civicwatt users` (see core.users);
    quotas_path: quotas.yaml (dual-control targets, quota standards), optional;
    data_dir: where alerts (the outbox) live and the session key is kept;
    now: a clock (tests); cache_ttl_s: how long year tables are reused;
    mv_dirs: folders of savings-verification project files (default: `mv/` next to
    the registry file and in data_dir);
    behind_proxy: trust one reverse proxy's X-Forwarded-For/-Proto/-Host (default
    $CIVICWATT_BEHIND_PROXY); secure_cookies: Secure cookies even on plain HTTP
    (default $CIVICWATT_SECURE_COOKIES; over TLS they are Secure anyway);
    login_throttle: the back-off after failed logins (tests give it their own clock).
    """
    users_file = Path(users_file)
    data_path = Path(data_dir) if data_dir is not None else None
    quotas = integrations.Quotas(quotas_path, registry)
    quotas.config()  # a bad quota file fails here, with every problem, not in a callback
    dirs = default_mv_dirs(registry, data_path) if mv_dirs is None else [Path(d) for d in mv_dirs]
    service = DataService(registry, store, quotas=quotas.config, cache_ttl_s=cache_ttl_s,
                          **({"now": now} if now is not None else {}))
    directory = login.UserDirectory(users_file)
    sessions = login.Sessions(directory, login.session_table(data_path, users_file))
    c = Context(store=store, service=service, quotas=quotas,
                mv=integrations.MVProjects(dirs, registry, store), data_dir=data_path,
                current_user=sessions.current_user)

    server = flask.Flask(__name__)
    login.register(server, sessions, login.secret_key(secret_key, data_path, users_file),
                   behind_proxy=login.env_flag("CIVICWATT_BEHIND_PROXY") if behind_proxy is None else behind_proxy,
                   secure_cookies=login.env_flag("CIVICWATT_SECURE_COOKIES") if secure_cookies is None
                   else secure_cookies, throttle=login_throttle)
    downloads.register(server, c)
    partial_plotly(server)
    app = dash.Dash(__name__, server=server, suppress_callback_exceptions=True, title="CivicWatt",
                    update_title=None, assets_folder=str(Path(__file__).parent / "assets"),
                    csrf_token_name=login.CSRF_COOKIE, csrf_header_name=login.CSRF_HEADER)
    shell.register(app, c, PAGES)
    for page in PAGES:
        page.register(app, c)
    security_headers(server, content_security_policy(app.csp_hashes()))
    callback_errors(server)
    app.service = service  # for tests and the benchmark: the data service and its caches
    app.warmup = WarmUp(c)  # started by `serve`
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


def serve(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, quiet: bool = True,
          warm_up: bool = True) -> ServerHandle:
    """Serve `app` from a thread (port 0: any free port); returns the running handle.
    `quiet`: no access log line per request; `warm_up`: prepare the first pages in the
    background once the server listens (`dashboard.warmup`; `app.warmup.ready` says when
    it is done)."""
    handle = ServerHandle(app, host, port, quiet).start()
    if warm_up and getattr(app, "warmup", None) is not None:
        app.warmup.start()
    return handle
