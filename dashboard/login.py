"""Sign-in: session cookie, login and logout pages, the request guard.

Sign-in: the session cookie and its server-side record, the login and logout pages,
the guard in front of every other request, CSRF protection, and the slow-down after
failed logins.

* every request except the login page and Dash's static bundles needs a signed
  session cookie (Flask `session`, signed with the secret key); pages redirect to
  `/login`, callbacks and downloads answer 401;
* the cookie names a session id that must be in the server's session table
  (`SessionTable`, SQLite in the data directory): logging out deletes it, so the
  cookie is worthless afterwards even if someone kept a copy. The session also holds
  a fingerprint of the password hash: the users file is re-read when it changes, so
  removing a user or changing a password ends their sessions at the next request;
* every state-changing request (POST/PUT/PATCH/DELETE: Dash callbacks, the login
  form, logout) must come from this site (Origin, else Referer, same host) and carry
  the session's CSRF token (flask-wtf): the login form as a hidden field, Dash
  callbacks as the `X-CSRFToken` header that Dash's renderer copies from the
  `_csrf_token` cookie. A request authenticated by a bearer token (`Authorization:
  Bearer ...`, no session cookie) carries no cookie a third site could ride on and
  needs no token (`bearer_request`); the HTTP API and `/healthz` (`SELF_AUTHENTICATED`)
  check their bearer tokens themselves and never honour the cookie, so the guard
  leaves them alone;
* failed logins slow down, per address and per user name, with exponential back-off
  (`LoginThrottle`); the right password is accepted as soon as the wait is over, so
  an attacker cannot lock a user out (the per-name wait is capped at
  BACKOFF_MAX_NAME_S);
* cookies are `Secure` when the request came over TLS, or always with
  `secure_cookies`; `behind_proxy` trusts one reverse proxy's X-Forwarded-For/-Proto/
  -Host (werkzeug's ProxyFix), so TLS ended at the proxy counts and the back-off sees
  the client's address.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import flask
from cachetools import TTLCache
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf, validate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms import ValidationError

from core.private import private_dir, private_file
from core.sqlite import connect
from core.users import User, UserDirectory, authenticate
from dashboard.i18n import norm_lang, t

SESSION_HOURS = 12  # a working day; then log in again
SECRET_FILE = "dashboard-secret.key"
SESSIONS_FILE = "dashboard-sessions.sqlite3"
CSRF_COOKIE = "_csrf_token"  # the cookie Dash's renderer reads into the X-CSRFToken header
CSRF_HEADER = "X-CSRFToken"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
PUBLIC_PREFIXES = ("/login", "/_dash-component-suites/", "/_dash-layout", "/_dash-dependencies", "/assets/",
                   "/_favicon.ico", "/_reload-hash")
API_PREFIXES = ("/_dash-update-component", "/download/")  # answer 401, not a redirect to the login page
# Paths that authenticate every request themselves and never read the session cookie:
# the HTTP API (bearer tokens) and the health check (no data). The guard lets them
# through and, since no cookie is ever honoured there, CSRF does not apply either.
SELF_AUTHENTICATED = ("/api/", "/healthz")

# Back-off after failed logins: after FREE failures, each further one doubles the wait
# before the next attempt is looked at (1 s, 2 s, 4 s ...), up to the cap. A counter is
# forgotten FORGET_S after its last failure. Per address the cap is high (one machine
# guessing); per name it is low, so that failures from anywhere delay the real user by
# at most half a minute instead of locking them out.
BACKOFF_BASE_S = 1.0
BACKOFF_FREE_ADDRESS = 10  # an office behind one NAT shares an address
BACKOFF_FREE_NAME = 3
BACKOFF_MAX_ADDRESS_S = 300.0
BACKOFF_MAX_NAME_S = 30.0
BACKOFF_FORGET_S = 900.0
BACKOFF_KEYS_KEPT = 100_000  # addresses and names with recent failures remembered at most

LOGIN_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>CivicWatt</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login"><form method="post" action="{action}" class="login-box">
<h1>{title}</h1>
<p class="lang"><a href="/login?lang=zh">中文</a> | <a href="/login?lang=en">English</a></p>
{error}{fields}
<input type="hidden" name="csrf_token" value="{csrf}">
<button id="{button_id}" type="submit">{button}</button>
</form></body></html>"""

LOGIN_FIELDS = """
<label>{user_label}<input id="username" name="username" autocomplete="username" required></label>
<label>{pw_label}<input id="password" name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="lang" value="{lang}"><input type="hidden" name="next" value="{next}">"""


class LoginThrottle:
    """Failed logins per address and per name: how long the next attempt must wait.

    `clock` is monotonic seconds (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # key -> (failures, time of the last failure); an entry is dropped FORGET_S after it was written
        self._failures: TTLCache = TTLCache(maxsize=BACKOFF_KEYS_KEPT, ttl=BACKOFF_FORGET_S, timer=clock)
        self._lock = threading.Lock()

    @staticmethod
    def delay_s(failures: int, free: int, cap: float) -> float:
        """The wait after `failures` failures: none for the first `free`, then doubling."""
        if failures < free:
            return 0.0
        return min(BACKOFF_BASE_S * 2.0 ** (failures - free), cap)

    def _keys(self, address: str, name: str) -> list[tuple[tuple[str, str], int, float]]:
        return [(("address", address), BACKOFF_FREE_ADDRESS, BACKOFF_MAX_ADDRESS_S),
                (("name", name), BACKOFF_FREE_NAME, BACKOFF_MAX_NAME_S)]

    def wait_s(self, address: str, name: str) -> float:
        """Seconds until an attempt for `name` from `address` is looked at (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [0.0]
            for key, free, cap in self._keys(address, name):
                failures, last = self._failures.get(key, (0, now))
                waits.append(self.delay_s(failures, free, cap) - (now - last))
            return max(waits)

    def failed(self, address: str, name: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _, _ in self._keys(address, name):
                failures, _ = self._failures.get(key, (0, now))
                self._failures[key] = (failures + 1, now)

    def succeeded(self, address: str, name: str) -> None:
        """The name's counter starts again (the address keeps its own, so one good
        account does not give an address free guesses at others)."""
        with self._lock:
            self._failures.pop(("name", name), None)


class SessionTable:
    """Signed-in sessions kept on the server (SQLite, mode 0600): a cookie is valid only
    while its session id is here and not expired."""

    def __init__(self, path: str | Path, lifetime_s: float = SESSION_HOURS * 3600):
        self.path = private_file(path)
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._con = connect(str(self.path))
        self._con.execute("CREATE TABLE IF NOT EXISTS session (sid_hash TEXT PRIMARY KEY, user TEXT NOT NULL,"
                          " expires REAL NOT NULL)")

    @staticmethod
    def _hash(sid: str) -> str:  # the table holds no usable cookie value
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self, user: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._con.execute("DELETE FROM session WHERE expires < ?", (now,))
            self._con.execute("INSERT INTO session VALUES (?, ?, ?)", (self._hash(sid), user, now + self.lifetime_s))
        return sid

    def valid(self, sid: str, user: str) -> bool:
        with self._lock:
            row = self._con.execute("SELECT user, expires FROM session WHERE sid_hash = ?",
                                    (self._hash(sid),)).fetchone()
        return row is not None and row[0] == user and row[1] > time.time()

    def end(self, sid: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM session WHERE sid_hash = ?", (self._hash(sid),))

    def close(self) -> None:
        with closing(self._con):
            pass


def fingerprint(user: User) -> str:
    """What the session keeps of the password hash: a change ends the session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


class Sessions:
    """Who is signed in, from the signed session cookie, the session table and the users file."""

    def __init__(self, directory: UserDirectory, table: SessionTable | None = None):
        self.directory = directory
        self.table = table

    def current_user(self) -> User | None:
        """The signed-in user of this request (looked up once per request)."""
        if "civicwatt_user" not in flask.g:
            flask.g.civicwatt_user = self._lookup()
        return flask.g.civicwatt_user

    def _lookup(self) -> User | None:
        name, sid = flask.session.get("user"), flask.session.get("sid")
        if not isinstance(name, str) or not isinstance(sid, str) or self.table is None:
            return None
        user = self.directory.users().get(name)
        if user is None or flask.session.get("fp") != fingerprint(user) or not self.table.valid(sid, name):
            return None
        return user

    def sign_in(self, user: User) -> None:
        assert self.table is not None
        flask.session.clear()
        flask.session.permanent = True
        flask.session["user"] = user.name
        flask.session["fp"] = fingerprint(user)
        flask.session["sid"] = self.table.create(user.name)
        flask.g.pop("civicwatt_user", None)

    def sign_out(self) -> None:
        sid = flask.session.get("sid")
        if isinstance(sid, str) and self.table is not None:
            self.table.end(sid)
        flask.session.clear()
        flask.g.pop("civicwatt_user", None)


def secret_key(given: str | None, data_dir: Path | None, users_file: Path) -> str:
    """The given key, $CIVICWATT_SECRET_KEY, or a random key kept (mode 0600) next to
    the data so sessions survive restarts."""
    if given:
        return given
    if os.environ.get("CIVICWATT_SECRET_KEY"):
        return os.environ["CIVICWATT_SECRET_KEY"]
    path = (data_dir or users_file.parent) / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    private_dir(path.parent)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key


def env_flag(name: str) -> bool:
    """An on/off environment variable (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def bearer_request() -> bool:
    """A request authenticated by `Authorization: Bearer <token>` and without our session
    cookie: the HTTP API's clients. No browser attaches such a header to a forged
    cross-site request, so CSRF checks do not apply; the API authenticates the token."""
    auth = flask.request.headers.get("Authorization", "")
    cookie = flask.current_app.config.get("SESSION_COOKIE_NAME", "session")
    return auth[:7].lower() == "bearer " and cookie not in flask.request.cookies


def same_origin() -> bool:
    """The request's Origin (else Referer) names this host, or the client sent neither
    (not a browser: it must still present the token)."""
    req = flask.request
    source = req.headers.get("Origin") or req.headers.get("Referer")
    if not source:
        return True
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == req.host and parts.scheme == req.scheme


def _esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def _page(lang: str, action: str, fields: str, button: str, button_id: str, error: str, status: int) -> flask.Response:
    body = LOGIN_PAGE.format(lang=lang, title=_esc(t("app_title", lang)), action=action, fields=fields,
                             csrf=_esc(generate_csrf()), button=_esc(button), button_id=button_id,
                             error=f'<p class="error" id="login-error">{_esc(error)}</p>' if error else "")
    return flask.Response(body, status=status, mimetype="text/html")


def _login_page(lang: str, nxt: str, error: str, status: int | None = None) -> flask.Response:
    fields = LOGIN_FIELDS.format(user_label=t("username", lang), pw_label=t("password", lang), lang=lang,
                                 next=_esc(nxt))
    return _page(lang, "/login", fields, t("login", lang), "login-button", error,
                 status if status is not None else (401 if error else 200))


def _safe_next(nxt: str) -> str:
    """Only a path on this site (no open redirect to another host)."""
    return nxt if nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else "/"


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure over TLS (as the request says, after ProxyFix) or always."""

    def __init__(self, always_secure: bool):
        self.always_secure = always_secure

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        return self.always_secure or (flask.has_request_context() and flask.request.is_secure)


def register(server: flask.Flask, sessions: Sessions, key: str, *, behind_proxy: bool = False,
             secure_cookies: bool = False, throttle: LoginThrottle | None = None) -> None:
    """Sign the session cookie with `key`; add the guard, CSRF protection, /login and /logout.

    `behind_proxy`: trust one reverse proxy's X-Forwarded-* headers; `secure_cookies`:
    mark cookies Secure even on plain-HTTP requests (TLS ends before the proxy we see)."""
    server.secret_key = key
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600,
                         WTF_CSRF_CHECK_DEFAULT=False,  # checked in the guard, after Origin and bearer tokens
                         WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session (12 h)
                         WTF_CSRF_SSL_STRICT=False,  # the Origin/Referer check below covers TLS too
                         WTF_CSRF_HEADERS=[CSRF_HEADER])
    server.session_interface = _SessionInterface(secure_cookies)
    if behind_proxy:
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    csrf = CSRFProtect(server)
    throttle = throttle or LoginThrottle()
    server.extensions["civicwatt.login_throttle"] = throttle

    @server.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError) -> flask.Response:
        return flask.Response(f"refused: {exc.description} (reload the page)", status=400, mimetype="text/plain")

    @server.before_request
    def guard() -> Any:
        req = flask.request
        path = req.path
        if path.startswith(SELF_AUTHENTICATED):
            return None
        if not (path.startswith(PUBLIC_PREFIXES) or sessions.current_user() is not None):
            if path.startswith(API_PREFIXES):
                return flask.Response("login required", status=401)
            return flask.redirect("/login?" + urlencode({"next": path}))
        if req.method in UNSAFE_METHODS and not bearer_request():
            if not same_origin():
                return flask.Response("refused: cross-site request", status=403, mimetype="text/plain")
            csrf.protect()
        return None

    @server.after_request
    def csrf_cookie(resp: flask.Response) -> flask.Response:
        """Give a signed-in browser the token Dash's renderer sends back as X-CSRFToken."""
        if "user" not in flask.session or sessions.current_user() is None:
            return resp
        try:
            validate_csrf(flask.request.cookies.get(CSRF_COOKIE, ""))
        except ValidationError:  # missing, or from an earlier session: issue one
            resp.set_cookie(CSRF_COOKIE, generate_csrf(), max_age=SESSION_HOURS * 3600, path="/",
                            secure=server.session_interface.get_cookie_secure(server), httponly=False,
                            samesite="Strict")
        return resp

    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        req = flask.request
        lang = norm_lang(req.values.get("lang"))
        nxt = _safe_next(req.values.get("next", "/"))
        if req.method != "POST":
            return _login_page(lang, nxt, "")
        name = req.form.get("username", "").strip()
        address = req.remote_addr or "-"
        wait = throttle.wait_s(address, name)
        if wait > 0:
            resp = _login_page(lang, nxt, t("login_wait", lang).format(s=math.ceil(wait)), status=429)
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        user = authenticate(sessions.directory.users(), name, req.form.get("password", ""))
        if user is None:
            throttle.failed(address, name)
            return _login_page(lang, nxt, t("login_failed", lang))
        throttle.succeeded(address, name)
        sessions.sign_in(user)
        return flask.redirect(nxt)

    @server.route("/logout", methods=["GET", "POST"])
    def logout() -> Any:
        req = flask.request
        # The navigation link is a GET from our own pages; from anywhere else, ask first
        # (a POST with the token), so a third site cannot sign the user out.
        own_page = req.headers.get("Sec-Fetch-Site") == "same-origin" or (
            bool(req.headers.get("Referer")) and same_origin())
        if req.method == "GET" and not own_page:
            lang = norm_lang(req.values.get("lang"))
            return _page(lang, "/logout", "", t("logout", lang), "logout-button", "", 200)
        sessions.sign_out()
        resp = flask.redirect("/login")
        resp.delete_cookie(CSRF_COOKIE, path="/")
        return resp


def session_table(data_dir: Path | None, users_file: Path) -> SessionTable:
    """The session table next to the secret key (the data directory, else the users file's)."""
    return SessionTable((data_dir or users_file.parent) / SESSIONS_FILE)

