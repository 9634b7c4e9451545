"""Collector throughput, end to end, against a bare pymodbus read loop on the same simulator.

End to end is poll, decode, validate, disk queue, store; the baseline is a bare
pymodbus read loop with the same concurrency.

    python benchmarks/bench_collect.py [--meters 10000] [--per-gateway 28] [--minute] [--influx]

* The simulator (`civicwatt simulate`) runs in its own process, pinned to the second
  core; this process (collector and baseline) is pinned to the first, so "one core" is
  literal.
* bare: one AsyncModbusTcpClient per gateway, all gateways concurrently, each reading its
  units one request at a time: exactly the requests the collector sends (same read
  plan), and nothing else: no decoding, no checks, no queue, no store.
* end to end: `CollectorService.poll_once` + `flush` into the embedded store: every
  sample decoded, checked, committed to the on-disk queue (synchronous=FULL) and written
  to the store (embedded, or with --influx a real influxd on a free loopback port).
* CPU seconds per 1,000 meters polled: process CPU time (all threads) / polls x 1000.
* --minute: also run the scheduler for real at a 1-minute interval and time one slot
  from its start until its last sample is in the store.

Target: ratio >= 0.7; 10,000 meters per minute on one core (wall < 60 s, CPU < 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from civicwatt.sample import sample_registry_doc  # noqa: E402
from collectors.service import CollectorService  # noqa: E402
from core.registry import load_registry  # noqa: E402
from storage import open_store  # noqa: E402
from tests.servers import free_port  # noqa: E402


def build_registry(directory: Path, n_meters: int, per_gateway: int) -> Path:
    """The sample portfolio scaled up, `per_gateway` units behind each gateway."""
    n_inst = math.ceil(n_meters / 6.75)
    doc = sample_registry_doc(n_institutions=n_inst, base_port=20000)
    doc["meters"] = doc["meters"][:n_meters]
    wanted = math.ceil(n_meters / per_gateway)
    found: set[int] = set()
    while len(found) < wanted:  # free_port may hand out a port twice
        found.add(free_port())
    ports = sorted(found)
    for k, m in enumerate(doc["meters"]):
        m["modbus"]["port"] = ports[k // per_gateway]
        m["modbus"]["unit"] = 1 + k % per_gateway
    used = {m["institution"] for m in doc["meters"]}
    doc["institutions"] = [i for i in doc["institutions"] if i["id"] in used]
    path = directory / "civicwatt.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def start_simulator(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cores = sorted(os.sched_getaffinity(0))
    sim_core = {cores[-1]}
    proc = subprocess.Popen([sys.executable, "-m", "civicwatt.cli", "simulate", "--registry", str(path)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, sim_core))
    line = proc.stdout.readline() if proc.stdout else ""
    if "civicwatt simulate" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc


async def bare_pass(service: CollectorService, concurrency: int) -> int:
    """Same requests as the collector, same concurrency, nothing done with the answers."""
    sem = asyncio.Semaphore(concurrency)

    async def gateway(poller) -> int:
        async with sem:
            client = AsyncModbusTcpClient(poller.host, port=poller.port, timeout=2, retries=0, reconnect_delay=0)
            await client.connect()
            n = 0
            for t in poller.targets:
                for r in t.plan.ratio_reads + t.plan.reads:
                    fn = client.read_input_registers if r.function_code == 4 else client.read_holding_registers
                    rr = await fn(r.address, count=r.count, device_id=t.unit)
                    if not rr.isError():
                        n += r is t.plan.reads[-1]
            client.close()
            return n

    return sum(await asyncio.gather(*(gateway(p) for p in service.pollers.values())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--per-gateway", type=int, default=28)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--minute", action="store_true", help="also run the scheduler for one real 1-minute slot")
    ap.add_argument("--influx", action="store_true", help="store into a real influxd instead of the embedded store")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})  # the collector gets one core
    work = Path(tempfile.mkdtemp(prefix="civicwatt-bench-collect-"))
    path = build_registry(work, args.meters, args.per_gateway)
    registry = load_registry(path)
    print(f"{len(registry.meters)} meters behind {len({m.modbus.port for m in registry.meters})} gateways; "
          f"collector on core {cores[0]}, simulator on core {cores[-1]}", flush=True)
    sim = start_simulator(path)
    influxd = None
    if args.influx:
        from tests.servers import Influxd

        influxd = Influxd()
        influxd.start()

    def new_store(name: str):
        url = influxd.url(name) if influxd is not None else f"embedded:{work / name}"
        return open_store(url, tz=registry.timezone)

    try:
        store = new_store("store")
        print(f"store: {store.url}", flush=True)
        store.set_meters(registry.meters_frame())
        svc = CollectorService(registry, store, work / "queue", gateway_options={"*": {"timeout_s": 3.0}})
        concurrency = svc.max_gateways_in_flight
        # warm-up (connections, CT/PT reads, imports)
        base = math.floor(time.time() / 60) * 60 - 3600  # past slots: the live run below comes after them
        svc.poll_once(at=base)
        svc.flush(60)

        bare_rates, e2e_rates, cpu_per_k, walls, cpus, bare_cpus = [], [], [], [], [], []
        for k in range(args.rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            polls = asyncio.run(bare_pass(svc, concurrency))
            bw, bc = time.perf_counter() - w0, time.process_time() - c0
            bare_rates.append(polls / bw)
            bare_cpus.append(bc)
            c0, w0 = time.process_time(), time.perf_counter()
            got = svc.poll_once(at=base + 60 * (k + 1))
            assert svc.flush(120), "queue did not drain"
            ew, ec = time.perf_counter() - w0, time.process_time() - c0
            e2e_rates.append(got["polls"] / ew)
            cpu_per_k.append(ec / got["polls"] * 1000)
            walls.append(ew)
            cpus.append(ec)
            print(f"round {k + 1}: bare {polls} polls in {bw:.2f}s ({polls / bw:,.0f}/s, {bc:.2f} CPU s); "
                  f"end to end {got['ok']}/{got['polls']} polls in {ew:.2f}s ({got['polls'] / ew:,.0f}/s, "
                  f"{ec:.2f} CPU s)", flush=True)
        bare, e2e = max(bare_rates), max(e2e_rates)
        print(f"\nend-to-end polls/s: {e2e:,.0f}   bare pymodbus loop: {bare:,.0f}   ratio: {e2e / bare:.2f} "
              f"(target >= 0.7)")
        print(f"CPU seconds per 1,000 meters polled: end to end {min(cpu_per_k):.3f}, bare loop "
              f"{min(bare_cpus) / args.meters * 1000:.3f} (CPU ratio bare/end-to-end {min(bare_cpus) / min(cpus):.2f})")
        print(f"{args.meters:,} meters, one pass end to end: {min(walls):.1f} s wall, {min(cpus):.1f} s CPU "
              f"-> at a 1-minute interval the collector core is {min(cpus) / 60:.0%} busy "
              f"({'sustained' if max(walls) < 60 and max(cpus) < 60 else 'NOT sustained'})")
        svc.stop(flush_timeout_s=60)

        if args.minute:
            store2 = new_store("store2")  # fresh: no gap to attribute
            store2.set_meters(registry.meters_frame())
            svc2 = CollectorService(registry, store2, work / "queue2", interval_s=60,
                                    gateway_options={"*": {"timeout_s": 3.0}})
            c0 = time.process_time()
            svc2.start()
            slot = math.floor(time.time() / 60) * 60 + 60
            print(f"\nscheduler at 1-minute interval: waiting for the slot at {time.strftime('%H:%M:%S', time.gmtime(slot))}"
                  " UTC ...", flush=True)
            while svc2.stats["samples_queued"] < args.meters:
                time.sleep(0.05)
            svc2.flush(60)
            done = time.time()
            cpu = time.process_time() - c0
            print(f"slot of {args.meters:,} meters: all in the store {done - slot:.1f} s after the slot started; "
                  f"CPU {cpu:.1f} s for the whole minute (incl. idle wait)")
            svc2.stop(flush_timeout_s=60)
            store2.close()
        store.close()
    finally:
        sim.terminate()
        sim.wait(20)
        if influxd is not None:
            influxd.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
