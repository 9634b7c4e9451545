"""GET /healthz: store reachable, processes alive and polling.

GET /healthz: is the store reachable, and is every process of this data directory alive and polling?

No token and no data: the store's reachability, and per process (`core.health`
heartbeats in DATA_DIR/health) its state, last successful poll, queue backlog and last
alert run, with the problems in words. 200 when the store answers and every heartbeat
is ok (`core.health.healthy`: none stalled for more than 3 poll intervals, none stale);
503 otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import flask
import pydantic

from api.framework import ApiContext, json_response
from core.health import health_dir, healthy, read_heartbeats


class ProcessHealth(pydantic.BaseModel):
    name: str
    role: str | None = None
    state: str | None = None
    ok: bool
    stalled: bool
    stale: bool
    updated_at: str | None = None
    age_s: float | None = None
    last_poll_at: str | None = None
    last_poll_ok_at: str | None = None
    queue_backlog: int | None = None
    alerts_enabled: bool | None = None
    last_alert_run_at: str | None = None
    last_alert_run_ok: bool | None = None
    problems: list[str]


class StoreHealth(pydantic.BaseModel):
    reachable: bool
    check_ms: float


class Health(pydantic.BaseModel):
    status: str  # "ok" | "unhealthy"
    store: StoreHealth
    processes: list[ProcessHealth]


def process_health(hb: dict[str, Any]) -> ProcessHealth:
    """The public part of one assessed heartbeat (no meter or institution data)."""
    collect = hb.get("collect") or {}
    alerts = hb.get("alerts") or {}
    return ProcessHealth(
        name=str(hb.get("name")), role=hb.get("role"), state=hb.get("state"), ok=bool(hb.get("ok")),
        stalled=bool(hb.get("stalled")), stale=bool(hb.get("stale")), updated_at=hb.get("updated_at"),
        age_s=hb.get("age_s"), last_poll_at=collect.get("last_poll_at"), last_poll_ok_at=collect.get("last_poll_ok_at"),
        queue_backlog=collect.get("queue_backlog"), alerts_enabled=alerts.get("enabled") if alerts else None,
        last_alert_run_at=alerts.get("last_run_at"), last_alert_run_ok=alerts.get("last_run_ok"),
        problems=[str(p) for p in hb.get("problems") or []])


def health(ctx: ApiContext) -> tuple[dict[str, Any], int]:
    """The /healthz document and its status code."""
    t0 = time.perf_counter()
    reachable = bool(ctx.store.ping())
    check_ms = round((time.perf_counter() - t0) * 1000, 1)
    beats = read_heartbeats(health_dir(ctx.data_dir)) if ctx.data_dir is not None else []
    ok = reachable and healthy(beats)
    doc = Health(status="ok" if ok else "unhealthy", store=StoreHealth(reachable=reachable, check_ms=check_ms),
                 processes=[process_health(b) for b in beats])
    return doc.model_dump(), 200 if ok else 503


def register(server: flask.Flask, ctx: ApiContext) -> None:
    @server.route("/healthz", methods=["GET"])
    def healthz() -> flask.Response:
        doc, status = health(ctx)
        resp = json_response(doc, status)
        resp.headers["Cache-Control"] = "no-store"
        return resp


OPENAPI_PATHS = {
    "/healthz": {"get": {
        "operationId": "healthz", "summary": "store reachable, processes polling (no token, no data)",
        "tags": ["health"], "security": [],
        "responses": {
            "200": {"description": "healthy", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Health"}}}},
            "503": {"description": "the store is unreachable, or a process stalled or is gone",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
        }}},
}
