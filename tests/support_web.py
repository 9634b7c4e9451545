"""Signing in to the dashboard over real HTTP as a browser does: the login form's CSRF
token, and the token header Dash's renderer sends with every callback. No tests live here."""

from __future__ import annotations

import re

import httpx

CSRF_COOKIE = "_csrf_token"


def form_token(html: str) -> str:
    """The hidden `csrf_token` of a login or logout form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def login(client: httpx.Client, name: str, password: str, **fields: str) -> httpx.Response:
    """GET the login page (a session with a CSRF token), then POST the form with it."""
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token, **fields})


def csrf_headers(client: httpx.Client) -> dict[str, str]:
    """The header Dash's renderer copies from the `_csrf_token` cookie."""
    token = client.cookies.get(CSRF_COOKIE)
    return {"X-CSRFToken": token} if token else {}


class FakeClock:
    """A monotonic clock the test moves (the login back-off's)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
