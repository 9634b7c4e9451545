"""A fuzz campaign over CivicWatt's input surfaces, outside the suite.

A fuzz campaign over CivicWatt's input surfaces, outside the suite: counts per category
of inputs tried, clean rejections, crashes (must be 0), silent accepts and
disagreements with the reference.

    python scripts/fuzz_inputs.py [--n 10000] [--seed 1] [--only csv,registry,web]

* readings and bills CSV: mutations of a valid file (tests/support_fuzz.py) through
  `parse_readings` / `parse_bills`; the verdict is compared with a row-by-row reference
  (csv module + datetime): "silent accept" = accepted although the reference rejects it,
  "false reject" = rejected although the reference accepts it.
* registry: targeted mutations of the sample registry (each knows whether it must be
  rejected) and random text mutations, through `load_registry`.
* web: download URLs and callback bodies with parameters of wrong type or out of range
  against a served dashboard over HTTP; a crash is a 5xx, a silent accept a 2xx with a
  body for a parameter out of range.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from civicwatt.sample import write_sample
from core.csvio import parse_bills, parse_readings
from core.registry import load_registry
from tests import support_fuzz as fz


def csv_campaign(kind: str, n: int, rnd: random.Random, tmp: Path) -> Counter:
    registry = load_registry(tmp / "civicwatt.yaml")
    base, parse, expect = ((fz.READINGS_GOOD, parse_readings, fz.expected_readings) if kind == "readings" else
                           (fz.BILLS_GOOD, parse_bills, fz.expected_bills))
    kw = {"now": fz.NOW} if kind == "readings" else {"today": fz.TODAY}
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    for i in range(n):
        data = fz.encode(rnd, fz.mutate_text(rnd, base))
        path = fz.write(tmp, f"{kind}.csv", data)
        verdict, value = fz.outcome(lambda path=path: parse(path, registry, **kw))
        want = expect(data, registry)
        counts["tried"] += 1
        if verdict == "crash":
            counts["crash"] += 1
            examples.setdefault(f"crash {type(value).__name__}", repr(data[:300]))
        elif verdict == "rejected":
            counts["rejected"] += 1
            if not fz.rejection_is_clean(value, str(path)):
                counts["unclean rejection"] += 1
                examples.setdefault("unclean", repr(data[:300]) + " -> " + str(value)[:300])
            if want is True:
                counts["false reject"] += 1
                examples.setdefault(f"false reject {i}", repr(data[:300]) + " -> " + str(value)[:300])
        else:
            counts["accepted"] += 1
            if want is False:
                counts["silent accept"] += 1
                examples.setdefault(f"silent accept {i}", repr(data[:300]))
        if want is None:
            counts["no reference verdict"] += 1
    for k, v in list(examples.items())[:12]:
        print(f"    e.g. {k}: {v}")
    return counts


def registry_campaign(n: int, rnd: random.Random, tmp: Path) -> Counter:
    from civicwatt.sample import sample_registry_doc

    doc = sample_registry_doc(n_institutions=2)
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    for i in range(n):
        data, want = fz.registry_bytes(rnd, doc)
        path = fz.write(tmp, "registry.yaml", data)
        verdict, value = fz.outcome(lambda path=path: load_registry(path))
        counts["tried"] += 1
        if want is None:
            counts["no reference verdict"] += 1
        if verdict == "crash":
            counts["crash"] += 1
            examples.setdefault(f"crash {type(value).__name__}", f"{value!r}"[:200] + " " + repr(data[:200]))
        elif verdict == "rejected":
            counts["rejected"] += 1
            if not fz.rejection_is_clean(value, str(path)):
                counts["unclean rejection"] += 1
                examples.setdefault("unclean", str(value)[:300])
            if want is True:
                counts["false reject"] += 1
                examples.setdefault(f"false reject {i}", str(value)[:300])
        else:
            counts["accepted"] += 1
            if want is False:
                counts["silent accept"] += 1
                examples.setdefault(f"silent accept {i}", ", ".join(fz.CHANGES))
    for k, v in list(examples.items())[:12]:
        print(f"    e.g. {k}: {v}")
    return counts


def web_campaign(n: int, rnd: random.Random, tmp: Path) -> dict[str, Counter]:
    import httpx

    from dashboard.app import create_app, serve
    from storage import open_store
    from tests import support_dashboard_world as w
    from tests import support_web as web

    reg = w.registry()
    store = open_store(f"embedded:{tmp / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(tmp / "users.yaml")
    app = create_app(reg, store, users, data_dir=tmp / "web", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    out = {"downloads": Counter(), "callbacks": Counter()}
    examples: dict[str, str] = {}
    try:
        clients = {}
        for name in ("admin", "inst1"):
            clients[name] = httpx.Client(base_url=handle.url, timeout=120)
            assert web.login(clients[name], name, w.PASSWORDS[name]).status_code == 302
        month = str(w.NOW.tz_localize(None).to_period("M"))
        for i in range(n):
            c = clients[rnd.choice(["admin", "inst1"])]
            if rnd.random() < 0.5:
                path, query, want = fz.download_url(rnd, w.NOW.year, month)
                r = c.get(path, params=query)
                counts, what = out["downloads"], f"{path}?{query}"
            else:
                body = fz.callback_body(rnd, app.callback_map)
                r = c.post("/_dash-update-component", json=body, headers=web.csrf_headers(c))
                counts, what, want = out["callbacks"], str(body)[:300], None
            counts["tried"] += 1
            if r.status_code >= 500:
                counts["crash"] += 1
                examples.setdefault(f"crash {r.status_code} {i}", what[:300])
            elif r.status_code >= 400 or r.status_code == 204:
                counts["rejected"] += 1
                if r.text == "bad callback request":  # dashboard.app's safety net: an input check is missing
                    counts["net"] += 1
                    examples.setdefault(f"safety net {i}", what[:300])
                if want is True:
                    counts["false reject"] += 1
                    examples.setdefault(f"false reject {i}", what[:300])
            else:
                counts["accepted"] += 1
                if want is False:
                    counts["silent accept"] += 1
                    examples.setdefault(f"silent accept {i}", what[:300])
            if want is None:
                counts["no reference verdict"] += 1
    finally:
        handle.shutdown()
        store.close()
    for k, v in list(examples.items())[:12]:
        print(f"    e.g. {k}: {v}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="csv,registry,web")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_sample(tmp, n_institutions=2)
        results = {}
        if "csv" in only:
            for kind in ("readings", "bills"):
                t = time.perf_counter()
                results[f"{kind} CSV"] = csv_campaign(kind, args.n, random.Random(args.seed), tmp)
                print(f"{kind}: {time.perf_counter() - t:.0f} s")
        if "registry" in only:
            t = time.perf_counter()
            results["registry YAML"] = registry_campaign(args.n, random.Random(args.seed), tmp)
            print(f"registry: {time.perf_counter() - t:.0f} s")
        if "web" in only:
            t = time.perf_counter()
            for name, counts in web_campaign(args.n, random.Random(args.seed), tmp).items():
                results[name] = counts
            print(f"web: {time.perf_counter() - t:.0f} s")
    print(f"\n{'category':<16} {'tried':>7} {'rejected':>9} {'crashes':>8} {'silent':>7} {'false rej':>9} "
          f"{'no ref':>7} {'unclean':>8} {'net':>5}")
    for name, c in results.items():
        print(f"{name:<16} {c['tried']:>7} {c['rejected']:>9} {c['crash']:>8} {c['silent accept']:>7} "
              f"{c['false reject']:>9} {c['no reference verdict']:>7} {c['unclean rejection']:>8} {c['net']:>5}")
    print("rejected: clean rejections (ConfigError naming file, line, field; HTTP 4xx or 204); silent: accepted "
          "although the reference rejects; unclean: a problem message over several lines; net: callbacks "
          "answered 400 by the app's safety net instead of a page's input check")


if __name__ == "__main__":
    main()
