"""Polling one gateway: async pymodbus clients, timeouts, retries, dead-unit isolation.

One `GatewayPoller` per gateway (host:port). Per poll cycle it reads every unit behind
the gateway over `connections` TCP connections (default 1: many gateways accept only
one), each connection sending one request at a time (an RS-485 bus behind a gateway
serves one request at a time anyway), with `pause_s` between requests.

How a dead or slow unit is kept from delaying the others:
* units that failed or answered slowly last time are polled *after* the healthy ones;
* a timed-out request closes the connection (a late answer must never be taken for the
  answer to the next request) and the next request reconnects;
* retries (with exponential backoff) are spent only on units that were healthy and on
  "busy" answers, never on units already known to be failing;
* after `fail_fast_after` consecutive timeouts of healthy units the gateway is taken as
  hung: the rest of the cycle is skipped and the next cycle reconnects;
* a whole cycle is bounded by a deadline (a fraction of the poll interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.decode import Read, extract
from core.schemas.gateways import GatewayOptions

BUSY_CODES = (5, 6)  # acknowledge, device busy: worth a retry after a pause
SLOW_FRACTION = 0.5  # an answer slower than half the timeout marks the unit as slow


@dataclass
class Target:
    """A meter as the poller sees it."""

    row: int
    meter_id: str
    unit: int
    plan: Any  # collectors.decode.ProfilePlan
    multiplier: float
    energy_ct_pt: bool
    instant_name: str | None
    instant_ct_pt: bool
    instant_per_kilo: float  # 1/1000 for W -> kW, else 1
    fails: int = 0
    slow: bool = False


class ReadFailed(Exception):
    def __init__(self, reason: str, timeout: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout


@dataclass
class _Conn:
    client: AsyncModbusTcpClient | None = None
    ratios: dict[int, float] = field(default_factory=dict)
    last_request: float = 0.0


class GatewayPoller:
    def __init__(self, host: str, port: int, targets: list[Target], options: GatewayOptions):
        self.host = host
        self.port = port
        self.targets = targets
        self.options = options
        self._conns = [_Conn() for _ in range(max(1, options.connections))]
        self._lock = asyncio.Lock()
        self.requests = 0
        self.timeouts = 0
        self.reconnects = 0

    # -- connection -------------------------------------------------------------
    async def _client(self, conn: _Conn) -> AsyncModbusTcpClient:
        if conn.client is not None and conn.client.connected:
            return conn.client
        await self._drop(conn)
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.options.timeout_s, retries=0,
                                      reconnect_delay=0)
        try:
            ok = await asyncio.wait_for(client.connect(), self.options.timeout_s * 2)
        except (TimeoutError, OSError, ModbusException):
            ok = False
        if not ok:
            client.close()
            raise ReadFailed("connect failed", timeout=True)
        self.reconnects += 1
        conn.client = client
        return client

    async def _drop(self, conn: _Conn) -> None:
        if conn.client is not None:
            with contextlib.suppress(Exception):
                conn.client.close()
        conn.client = None
        conn.ratios.clear()

    async def close(self) -> None:
        for conn in self._conns:
            await self._drop(conn)

    async def _request(self, conn: _Conn, read: Read, unit: int, retries: int) -> list[int]:
        opts = self.options
        delay = opts.backoff_s
        for attempt in range(retries + 1):
            client = await self._client(conn)
            if opts.pause_s:
                wait = conn.last_request + opts.pause_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self.requests += 1
            try:
                if read.function_code == 4:
                    rr = await client.read_input_registers(read.address, count=read.count, device_id=unit)
                else:
                    rr = await client.read_holding_registers(read.address, count=read.count, device_id=unit)
            except (ModbusException, TimeoutError, OSError) as exc:
                conn.last_request = time.monotonic()
                self.timeouts += 1
                await self._drop(conn)  # never read a late answer as the next one's
                if attempt < retries:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                raise ReadFailed(f"no answer ({type(exc).__name__})", timeout=True) from None
            conn.last_request = time.monotonic()
            if rr.isError():
                code = int(getattr(rr, "exception_code", 0) or 0)
                if code in BUSY_CODES and attempt < retries:
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                raise ReadFailed(f"Modbus exception {code}")
            regs = list(rr.registers)
            if len(regs) < read.count:
                raise ReadFailed(f"short answer ({len(regs)} of {read.count} registers)")
            return regs[:read.count]
        raise ReadFailed("retries exhausted")

    async def _read_target(self, conn: _Conn, t: Target) -> tuple[float, float]:
        """(raw index, instantaneous primary value) of one meter."""
        retries = self.options.retries if t.fails == 0 else 0
        plan = t.plan
        ctpt = 1.0
        if plan.ratio_fields:
            if t.unit not in conn.ratios:
                blocks: dict[int, int] = {}
                for r in plan.ratio_reads:
                    regs = await self._request(conn, r, t.unit, retries)
                    blocks.update(zip(range(r.address, r.address + r.count), regs, strict=True))
                vals = extract(plan.ratio_fields, blocks)
                conn.ratios[t.unit] = float(vals.get("ct", 1.0)) * float(vals.get("pt", 1.0))
            ctpt = conn.ratios[t.unit]
        blocks = {}
        for r in plan.reads:
            regs = await self._request(conn, r, t.unit, retries)
            blocks.update(zip(range(r.address, r.address + r.count), regs, strict=True))
        vals = extract(plan.fields, blocks)
        energy = vals["energy"]
        if not math.isfinite(energy):
            raise ReadFailed(f"the meter returned an invalid index ({energy})")
        if t.energy_ct_pt and ctpt != t.multiplier:
            energy = energy * ctpt / t.multiplier  # stored index x registry multiplier = primary
        instant = float("nan")
        if t.instant_name is not None:
            instant = vals[t.instant_name] * t.instant_per_kilo * (ctpt if t.instant_ct_pt else t.multiplier)
        return energy, instant

    # -- a cycle ----------------------------------------------------------------
    async def poll(self, slot_of: dict[int, int], deadline_s: float, out: list[tuple]) -> None:
        """Poll the targets whose rows are in `slot_of` (row -> slot time); append
        (row, t, raw_index, instant, error) to `out`."""
        async with self._lock:
            targets = [t for t in self.targets if t.row in slot_of]
            cycle = _Cycle(slot_of, out, sorted(targets, key=lambda t: (t.fails > 0, t.slow)))
            tasks = [asyncio.ensure_future(self._work(conn, cycle)) for conn in self._conns]
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), deadline_s)
            except TimeoutError:
                for task in tasks:
                    task.cancel()
                for conn in self._conns:
                    await self._drop(conn)
                for t in targets:
                    if t.row not in cycle.done:
                        t.fails += 1
                        cycle.report(t, error="cycle deadline passed")

    async def _work(self, conn: _Conn, cycle: _Cycle) -> None:
        """One connection's share of a cycle: the next pending unit until none is left."""
        while cycle.pending:
            t = cycle.pending.pop(0)
            if cycle.timeouts >= self.options.fail_fast_after:
                cycle.report(t, error="gateway not answering")
                continue
            started = time.monotonic()
            try:
                energy, instant = await self._read_target(conn, t)
            except ReadFailed as exc:
                if exc.timeout and t.fails == 0:
                    cycle.timeouts += 1
                t.fails += 1
                cycle.report(t, error=exc.reason)
            else:
                cycle.timeouts = 0
                t.fails = 0
                t.slow = time.monotonic() - started > SLOW_FRACTION * self.options.timeout_s
                cycle.report(t, energy, instant)


@dataclass
class _Cycle:
    """One poll cycle of a gateway: what is left to read, and what was read."""

    slot_of: dict[int, int]  # row -> slot time
    out: list[tuple]  # (row, t, raw_index, instant, error)
    pending: list[Target]  # in polling order
    done: set[int] = field(default_factory=set)
    timeouts: int = 0  # timeouts of healthy units in a row

    def report(self, t: Target, energy: float = math.nan, instant: float = math.nan, error: str | None = None
               ) -> None:
        self.out.append((t.row, self.slot_of[t.row], energy, instant, error))
        self.done.add(t.row)
