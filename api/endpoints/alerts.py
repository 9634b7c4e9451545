"""GET /api/v1/alerts and POST /api/v1/alerts/{key}/ack: the alert outbox, in scope."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from api.framework import Api, Request, problem
from core.access import require_acknowledge, visible_alerts


class AlertsQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    status: Literal["open", "all"] = "open"


class Alert(pydantic.BaseModel):
    """One alert (interfaces.md § Alerts) with its state in the outbox."""

    model_config = pydantic.ConfigDict(extra="allow")
    key: str
    rule: str
    severity: str
    institution_id: str | None = None
    scope: str | None = None
    indicator: str | None = None
    period: str | None = None
    actual: float | None = None
    limit: float | None = None
    projected: float | None = None
    message_zh: str | None = None
    message_en: str | None = None
    first_seen: str | None = None
    status: str
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None


class AlertRows(pydantic.BaseModel):
    rows: list[Alert]


class Acknowledged(pydantic.BaseModel):
    key: str
    acknowledged_by: str
    acknowledged_at: str | None


def register(api: Api) -> None:
    def outbox() -> Any:
        box = api.ctx.outbox()
        if box is None:
            raise problem("-", "no alert outbox on this server")
        return box

    @api.route("/alerts", summary="alerts in scope", query=AlertsQuery, response=AlertRows, tag="alerts")
    def alerts(req: Request) -> Any:
        """Open alerts (or all, with status=all), newest first: those about institutions the
        token's user sees and about regions they manage (`core.access.alert_visible`)."""
        rows = outbox().list_alerts(open_only=req.query.status == "open")
        return {"rows": visible_alerts(req.user, api.ctx.registry, rows)}

    @api.route("/alerts/<key>/ack", "POST", summary="acknowledge an open alert", response=Acknowledged,
               tag="alerts")
    def acknowledge(req: Request, key: str) -> Any:
        """Take an open alert on (no more reminders). 403 for an alert outside the scope
        or no open alert with this key (refused alike)."""
        box = outbox()
        match = [a for a in box.list_alerts(open_only=True) if a.get("key") == key]
        require_acknowledge(req.user, api.ctx.registry, match[0] if match else None)
        box.acknowledge(key, req.user.name)
        done = next(a for a in box.list_alerts(open_only=True) if a.get("key") == key)
        return {"key": key, "acknowledged_by": done["acknowledged_by"], "acknowledged_at": done["acknowledged_at"]}
