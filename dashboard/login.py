"""Sign-in: the session cookie, the login and logout pages, the guard in front of
every other request, and the lockout after repeated failed logins.

* every request except the login page and Dash's static bundles needs a signed
  session cookie (Flask `session`, signed with the secret key); pages redirect to
  `/login`, callbacks and downloads answer 401;
* the session names the user and a fingerprint of their password hash; the users
  file is re-read when it changes, so removing a user or changing a password ends
  their sessions at the next request;
* LOGIN_MAX_FAILURES failed logins for one name from one address within
  LOGIN_WINDOW_S lock that pair for the rest of the window.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import flask
from cachetools import TTLCache

from dashboard.auth import User, authenticate, load_users
from dashboard.cache import FileCache, mtime_stamp
from dashboard.i18n import norm_lang, t

SESSION_HOURS = 12  # a working day; then log in again
LOGIN_MAX_FAILURES = 5  # failed logins per user and address ...
LOGIN_WINDOW_S = 300  # ... within 5 minutes lock that pair for the rest of the window
LOGIN_PAIRS_KEPT = 100_000  # (address, name) pairs with recent failures remembered at most
SECRET_FILE = "dashboard-secret.key"
PUBLIC_PREFIXES = ("/login", "/_dash-component-suites/", "/_dash-layout", "/_dash-dependencies", "/assets/",
                   "/_favicon.ico", "/_reload-hash")
API_PREFIXES = ("/_dash-update-component", "/download/")  # answer 401, not a redirect to the login page

LOGIN_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>CivicWatt</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login"><form method="post" action="/login" class="login-box">
<h1>{title}</h1>
<p class="lang"><a href="/login?lang=zh">中文</a> | <a href="/login?lang=en">English</a></p>
{error}
<label>{user_label}<input id="username" name="username" autocomplete="username" required></label>
<label>{pw_label}<input id="password" name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="lang" value="{lang}"><input type="hidden" name="next" value="{next}">
<button id="login-button" type="submit">{button}</button>
</form></body></html>"""


class UserDirectory:
    """The users file, re-read when its modification time changes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._cache = FileCache()

    def users(self) -> dict[str, User]:
        return self._cache.get(self.path, mtime_stamp(self.path), lambda: load_users(self.path))


class FailedLogins:
    """Failed logins per (address, name) within the last LOGIN_WINDOW_S seconds."""

    def __init__(self) -> None:
        # an entry outlives its last failure by the window, so a lock always ends
        self._recent: TTLCache = TTLCache(maxsize=LOGIN_PAIRS_KEPT, ttl=LOGIN_WINDOW_S, timer=time.monotonic)
        self._lock = threading.Lock()

    def _within_window(self, key: tuple[str, str]) -> list[float]:
        now = time.monotonic()
        return [x for x in self._recent.get(key, []) if now - x < LOGIN_WINDOW_S]

    def locked(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return len(self._within_window(key)) >= LOGIN_MAX_FAILURES

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._recent[key] = [*self._within_window(key), time.monotonic()]

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._recent.pop(key, None)


def fingerprint(user: User) -> str:
    """What the session keeps of the password hash: a change ends the session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


class Sessions:
    """Who is signed in, from the signed session cookie and the users file."""

    def __init__(self, directory: UserDirectory):
        self.directory = directory

    def current_user(self) -> User | None:
        name = flask.session.get("user")
        if not name:
            return None
        user = self.directory.users().get(name)
        if user is None or flask.session.get("fp") != fingerprint(user):
            return None
        return user

    def sign_in(self, user: User) -> None:
        flask.session.clear()
        flask.session.permanent = True
        flask.session["user"] = user.name
        flask.session["fp"] = fingerprint(user)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key


def _esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def _login_page(lang: str, nxt: str, error: str) -> flask.Response:
    body = LOGIN_PAGE.format(
        lang=lang, title=_esc(t("app_title", lang)), user_label=t("username", lang),
        pw_label=t("password", lang), button=t("login", lang), next=_esc(nxt),
        error=f'<p class="error" id="login-error">{_esc(error)}</p>' if error else "")
    return flask.Response(body, status=401 if error else 200, mimetype="text/html")


def _safe_next(nxt: str) -> str:
    """Only a path on this site (no open redirect to another host)."""
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"


def register(server: flask.Flask, sessions: Sessions, key: str) -> None:
    """Sign the session cookie with `key`; add the guard, /login and /logout."""
    server.secret_key = key
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600)
    failures = FailedLogins()

    @server.before_request
    def guard() -> Any:
        path = flask.request.path
        if path.startswith(PUBLIC_PREFIXES) or sessions.current_user() is not None:
            return None
        if path.startswith(API_PREFIXES):
            return flask.Response("login required", status=401)
        return flask.redirect("/login?" + urlencode({"next": path}))

    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        req = flask.request
        lang = norm_lang(req.values.get("lang"))
        nxt = _safe_next(req.values.get("next", "/"))
        if req.method != "POST":
            return _login_page(lang, nxt, "")
        name = req.form.get("username", "").strip()
        pair = (req.remote_addr or "-", name)
        if failures.locked(pair):
            return _login_page(lang, nxt, t("login_locked", lang))
        user = authenticate(sessions.directory.users(), name, req.form.get("password", ""))
        if user is None:
            failures.failed(pair)
            return _login_page(lang, nxt, t("login_failed", lang))
        failures.succeeded(pair)
        sessions.sign_in(user)
        return flask.redirect(nxt)

    @server.route("/logout")
    def logout() -> Any:
        flask.session.clear()
        return flask.redirect("/login")
