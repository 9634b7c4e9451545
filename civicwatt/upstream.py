"""Upward reporting (纵向直报), the lower level's side: approved months pushed to the upper level's API.

A lower-level instance with an `upstream.yaml` (`core.schemas.upstream`) pushes, for each
month its reviewers approved (`storage.submissions.SubmissionBook`, status approved), the
institution's basic information (`core.registry.reported_entry`) and the month's figures
per energy — main meters and bills, in canonical units, by `models.api.energy_use`, the
figures every indicator uses, with their heating and estimated parts — to the upper
level's `POST /api/v1/upstream`.

Delivery is the alert outbox's (`alerts.outbox.Outbox`, its own database in
`DATA/upstream/`): each message is one row per (institution/month key, revision), where
the revision is taken from the digest of the content, so an unchanged month is never
queued twice and a corrected one (approved again with other figures) is queued as a new
revision behind the old one; retried with back-off until the upper level answers 2xx;
each attempt carries the same idempotency key. Both sides survive restarts: the outbox is
on disk, and the upper level keeps a receipt per (instance, institution, month, digest),
so a replay is acknowledged without being stored twice.

The job runs in `civicwatt collect` and `civicwatt demo` (the runtime's `upstream-push`
job) and in `civicwatt serve` (`start_pusher`), every `interval_s`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from alerts.channels import Channel, ChannelsConfig, DeliveryError, delivery_headers
from alerts.outbox import DeliveryResult, Outbox
from core.registry import Registry, reported_entry
from core.schemas.upstream import UpstreamConfig
from core.vocab import CANONICAL_UNIT
from models.api import energy_sums, energy_use, institution_context
from models.factors import FactorSet, load_factors
from storage.submissions import SubmissionBook

log = logging.getLogger("civicwatt.upstream")
PATH = "/api/v1/upstream"
KIND = "upstream"


@dataclass
class UpstreamChannel(Channel):
    """The upper level's API as a delivery channel of the outbox."""

    url: str = ""
    token: str = ""
    timeout_s: float = 10.0

    def send(self, payload: dict[str, Any]) -> None:
        body = {k: payload[k] for k in ("instance", "institution", "month", "items", "digest")}
        headers = {"Authorization": f"Bearer {self.token}", **delivery_headers(payload)}
        try:
            resp = httpx.post(self.url + PATH, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"{self.name}: HTTP {resp.status_code}: {resp.text[:300]}")


def digest(content: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a message's content."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def month_items(store, registry: Registry, months: pd.DataFrame, factors: FactorSet) -> dict[tuple[str, str], list]:
    """The figures of each (institution_id, month) of `months` per energy: quantity in the
    canonical unit (main meters and bills, `energy_use` at daily resolution, one read over
    the span), of which `heating_quantity` for an energy of heating meters or purchased heat
    (the heating-season part, exact per day; 0 too) and `estimated_quantity` where some was
    estimated over meter gaps (both `energy_sums`, as the ledger counts
    them), cost from the bills of that month where known."""
    if months.empty:
        return {}
    periods = pd.PeriodIndex(months["month"], freq="M")
    start, end = periods.min().start_time, (periods.max() + 1).start_time
    ids = sorted(set(months["institution_id"]))
    use = energy_use(store, registry, start, end, "day", factors, institution_ids=ids)
    sums = energy_sums(use, institution_context(registry, factors), period="month", freq="day", tz=registry.timezone)
    g = pd.DataFrame({"institution_id": sums["institution_id"].astype(str).to_numpy(object),
                      "month": pd.DatetimeIndex(sums["period_start"]).strftime("%Y-%m"),
                      "energy": sums["energy"].astype(str).to_numpy(object),
                      "quantity": sums["quantity"].to_numpy(float),
                      "heating_quantity": sums["heating_quantity"].to_numpy(float),
                      "estimated_quantity": sums["estimated_quantity"].to_numpy(float)})
    g = g.assign(unit=g["energy"].map(CANONICAL_UNIT)).sort_values(["institution_id", "month", "energy"])
    hot = use[use["heating"].astype(bool)]  # energies with heating rows: their heating part is sent, 0 too
    heated = set(zip(hot["institution_id"], pd.DatetimeIndex(hot["period_start"]).strftime("%Y-%m"), hot["energy"],
                     strict=True))
    bills = store.read_bills(ids)
    cost = {}
    if len(bills):
        p0, p1 = pd.to_datetime(bills["period_start"]), pd.to_datetime(bills["period_end"])
        whole = p0.dt.to_period("M") == p1.dt.to_period("M")
        b = bills[whole].assign(month=p0[whole].dt.strftime("%Y-%m"))
        cost = b.groupby(["institution_id", "month", "energy"])["cost_cny"].sum(min_count=1).to_dict()
    out: dict[tuple[str, str], list] = {}
    for r in g.itertuples(index=False):  # one per institution, month and energy
        c = cost.get((r.institution_id, r.month, r.energy))
        item = {"energy": str(r.energy), "quantity": float(r.quantity), "unit": str(r.unit),
                "cost_cny": None if c is None or pd.isna(c) else float(c)}
        if (r.institution_id, r.month, r.energy) in heated:
            item["heating_quantity"] = float(r.heating_quantity)
        if r.estimated_quantity > 0:
            item["estimated_quantity"] = float(r.estimated_quantity)
        out.setdefault((r.institution_id, r.month), []).append(item)
    return out


def approved_messages(store, registry: Registry, book: SubmissionBook, instance: str,
                      factors: FactorSet | None = None) -> list[dict[str, Any]]:
    """One message per approved month of an institution of the registry: key
    (instance/institution/month), revision (from the digest), instance, institution,
    month, items, digest."""
    factors = factors or load_factors()
    st = book.statuses()
    st = st[(st["status"] == "approved") & st["institution_id"].isin(registry.institution_by_id)]
    items = month_items(store, registry, st, factors)
    out = []
    for iid, month in zip(st["institution_id"], st["month"], strict=True):
        inst = registry.institution_by_id[iid]
        content = {"instance": instance, "institution": reported_entry(inst, registry), "month": month,
                   "items": items.get((iid, month), [])}
        d = digest(content)
        out.append({**content, "digest": d, "key": f"{instance}/{iid}/{month}", "revision": int(d[:12], 16)})
    return out


class UpstreamPusher:
    """Queues the approved months and delivers them (module docstring)."""

    def __init__(self, config: UpstreamConfig, store, registry: Registry, data_dir: str | Path,
                 factors: FactorSet | None = None):
        self.config, self.store, self.registry = config, store, registry
        self.data_dir = Path(data_dir)
        self.factors = factors or load_factors()
        channel = UpstreamChannel(name="upstream", url=config.url, token=config.token, timeout_s=config.timeout_s)
        self.outbox = Outbox(self.data_dir / "upstream", ChannelsConfig(
            channels=[channel], retry_base_s=config.retry_base_s, retry_max_s=config.retry_max_s))
        self._lock = threading.Lock()

    @property
    def _seen_path(self) -> Path:
        return self.data_dir / "upstream" / "returns-seen.json"

    def fetch_returns(self, book: SubmissionBook) -> int:
        """Months the upper level returned since the last fetch, marked returned here with
        its comment (a reviewer corrects and approves again: a new revision is pushed).
        Returns how many; an unreachable upper level is tried again next run."""
        after = json.loads(self._seen_path.read_text()) if self._seen_path.exists() else 0
        try:
            resp = httpx.get(self.config.url + PATH + "/returns", params={"instance": self.config.instance,
                             "after": after}, headers={"Authorization": f"Bearer {self.config.token}"},
                             timeout=self.config.timeout_s)
        except httpx.HTTPError:
            return 0
        if resp.status_code != 200:
            return 0
        got = resp.json()["rows"]
        rows = [r for r in got if r["institution_id"] in self.registry.institution_by_id]
        for r in rows:
            book.set_status(r["institution_id"], r["month"], "returned", f"upstream:{r['who']}",
                            comment=r["comment"])
        last = max([after, *(r["id"] for r in got)])
        tmp = self._seen_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(last))
        tmp.replace(self._seen_path)
        return len(rows)

    def run_once(self, now: datetime | None = None) -> DeliveryResult:
        """Apply the upper level's returns, queue what was approved since the last run,
        then deliver what is due."""
        now = now or datetime.now(UTC)
        with self._lock:
            book = SubmissionBook(self.data_dir)
            try:
                self.fetch_returns(book)
                messages = approved_messages(self.store, self.registry, book, self.config.instance, self.factors)
            finally:
                book.close()
            queued = self.outbox.enqueue(messages, KIND, now)
            result = self.outbox.deliver_pending(now)
        if queued or result.sent or result.failed:
            log.info("upstream %s: %d queued, %d sent, %d failed, %d pending", self.config.url, queued, result.sent,
                     result.failed, result.pending, extra={"queued": queued, "sent": result.sent,
                                                           "failed": result.failed, "pending": result.pending})
        return result


def start_pusher(pusher: UpstreamPusher, stop: threading.Event) -> threading.Thread:
    """`pusher.run_once()` now and every `interval_s` until `stop` is set, in a daemon
    thread (for `civicwatt serve`, which runs no runtime); errors are logged."""
    def loop() -> None:
        while not stop.is_set():
            try:
                pusher.run_once()
            except Exception:
                log.exception("upstream push failed")
            stop.wait(pusher.config.interval_s)

    thread = threading.Thread(target=loop, name="upstream-push", daemon=True)
    thread.start()
    return thread
