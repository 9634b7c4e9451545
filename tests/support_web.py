"""Signing in to the dashboard over real HTTP as a browser does: the login form's CSRF
token, and the token header Dash's renderer sends with every callback. No tests live here."""

from __future__ import annotations

import json
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


class Answer:
    """A callback's response with `text` as decoded JSON (Dash may or may not escape
    non-ASCII characters, depending on whether orjson is installed)."""

    def __init__(self, resp: httpx.Response):
        self.status_code = resp.status_code
        self.raw = resp
        try:
            self.text = json.dumps(resp.json(), ensure_ascii=False)
        except ValueError:
            self.text = resp.text

    def json(self):
        return self.raw.json()


def callback(c: httpx.Client, outputs: list[tuple[str, str]], inputs: list, state=(),
             changed=None, headers: dict | None = None) -> Answer:
    """POST /_dash-update-component as the browser would."""
    outs = [{"id": i, "property": p} for i, p in outputs]
    output = outs[0]["id"] + "." + outs[0]["property"] if len(outs) == 1 else \
        ".." + "...".join(f"{o['id']}.{o['property']}" for o in outs) + ".."
    body = {"output": output, "outputs": outs[0] if len(outs) == 1 else outs, "inputs": inputs,
            "state": list(state), "changedPropIds": changed or [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
    return Answer(c.post("/_dash-update-component", json=body, headers={**csrf_headers(c), **(headers or {})}))


def alerts_callback(c: httpx.Client, clicked: str | None = None, selected: tuple[str, ...] = (),
                    bulk: bool = False, headers: dict | None = None) -> Answer:
    """The alerts tables' callback as the browser calls it: the filters (none), a click
    on the "acknowledge" cell of `clicked`, or "acknowledge selected" with the rows of
    `selected` ticked (a crafted request may name any key)."""
    filters = [{"id": f"alerts-{name}", "property": "value", "value": value}
               for name, value in (("severity", []), ("rule", []), ("scope", None), ("status", []), ("period", "all"))]
    cell = {"row": 0, "column": 7, "column_id": "action", "row_id": clicked} if clicked else None
    rows = [{"id": k} for k in selected]
    changed = ["alerts-ack-selected.n_clicks"] if bulk else ["alerts-open.active_cell"] if clicked else \
        ["alerts-severity.value"]
    return callback(c, [("alerts-open", "data"), ("alerts-open", "selected_rows"), ("alerts-past", "data"),
                        ("alerts-count", "children"), ("alerts-flash", "children")],
                    [*filters, {"id": "alerts-open", "property": "active_cell", "value": cell},
                     {"id": "alerts-ack-selected", "property": "n_clicks", "value": 1 if bulk else 0}],
                    state=[{"id": "alerts-open", "property": "data", "value": rows},
                           {"id": "alerts-open", "property": "selected_rows", "value": list(range(len(rows)))},
                           {"id": "lang", "property": "data", "value": "en"}],
                    changed=changed, headers=headers)
