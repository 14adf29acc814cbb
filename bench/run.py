"""Benchmark our recommender against the floor and peer engines, in one process.

    python -m bench.run                 # full run (K = 10, 100, 1000, 10000), a few minutes
    python -m bench.run --quick         # about a minute
    python -m bench.run --memory 1000000 [--memory-k 100]   # RSS over N recommend() calls

For every K: generate a pack of K rules and contexts (``bench/gen.py``), compute the expected
matches (``bench/reference.py``), build every engine, check every engine's matches on every
context it will be timed on (abort on any mismatch), then time the engines round by round
(each round runs every engine, in a rotating order, over its contexts) so that load on the
machine hits all of them alike. Reported per engine: median and p99 latency per context,
throughput (contexts per second of thread CPU time), and the ratio of the median to the
floor's median. Results also go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .gen import generate, generate_contexts
from .reference import build_floor, expected

RESULTS = Path(__file__).parent / "results"


@dataclass
class Engine:
    name: str
    fn: Callable[[Any], Any]
    inputs: list[Any]           # what fn takes, one per context (aligned with the contexts)
    matches: Callable[[Any], set[str]]  # fn's output -> matched rule ids
    build_s: float
    n: int = 0                  # contexts used for timing (set after the probe)
    lat: list[int] = field(default_factory=list)
    cpu_ns: int = 0
    calls: int = 0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def result_rule_ids(res: Any) -> set[str]:
    ids = {m.rule_id for r in res.recommendations for m in r.rules}
    for w in (*res.withheld, *res.needs_approval):
        ids.update(w.rules)
    return ids


def build_engines(k: int, pack: dict[str, Any], contexts: list[dict[str, Any]], skip: set[str]) -> tuple[list[Engine], Any]:
    from recommender import Recommender
    from recommender.context import parse_context

    from .peers import DurableDirect, RuleEngine, Zen

    engines: list[Engine] = []

    t = time.perf_counter()
    floor = build_floor(pack)
    engines.append(Engine("floor (plain Python)", floor, contexts, set, time.perf_counter() - t))

    t = time.perf_counter()
    rec = Recommender(rules=[], packs=[pack], autoload=False)
    book = rec.rulebook
    build = time.perf_counter() - t
    engines.append(Engine("ours: recommend()", rec.recommend, contexts, result_rule_ids, build))
    # The same without the explanation memo (every part made afresh): what the timing rounds'
    # repeated contexts would flatter, since they hand every engine the same contexts again.
    fresh = Recommender(rules=[], packs=[pack], autoload=False)
    fresh.rulebook.shared = None
    engines.append(Engine("ours: recommend(), no memo", fresh.recommend, contexts, result_rule_ids, 0.0))

    parsed = [parse_context(c) for c in contexts]
    read_row, match_row = book.read_row, book.matcher.match_row
    ids = [r.id for r in book.rules]

    def match_step(ctx: Any) -> Any:  # as the pipeline's match stage
        return match_row(read_row(ctx))

    engines.append(Engine("ours: match step", match_step, parsed,
                          lambda out: {ids[ri] for ri, _ in out[0]}, 0.0))

    peers = [("durable", DurableDirect), ("zen", Zen), ("rule-engine", RuleEngine)]
    for key, cls in peers:
        if key in skip:
            continue
        t = time.perf_counter()
        eng = cls(pack)
        engines.append(Engine(cls.name, eng, contexts, set, time.perf_counter() - t))
    return engines, rec


def verify(engine: Engine, exp: list[set[str]]) -> None:
    for i in range(engine.n):
        out = engine.fn(engine.inputs[i])
        got = engine.matches(out)
        if got != exp[i]:
            missing, extra = sorted(exp[i] - got)[:5], sorted(got - exp[i])[:5]
            raise SystemExit(f"MISMATCH: {engine.name} on context {i}: missing {missing} extra {extra} "
                             f"(expected {len(exp[i])}, got {len(got)})")


def probe(engine: Engine, count: int = 3) -> float:
    t = time.perf_counter()
    for i in range(count):
        engine.fn(engine.inputs[i])
    return (time.perf_counter() - t) / count


def time_rounds(engines: list[Engine], rounds: int) -> None:
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for r in range(rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for e in order:
            fn, inputs, lat = e.fn, e.inputs, e.lat
            gc.collect()
            c0 = cpu()
            for i in range(e.n):
                x = inputs[i]
                t0 = clock()
                fn(x)
                lat.append(clock() - t0)
            e.cpu_ns += cpu() - c0
            e.calls += e.n


def bench_batch(rec: Any, contexts: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    from recommender.batch import recommend_many

    loop = [rec.recommend(c) for c in contexts]
    many = recommend_many(rec, contexts)
    if [r.model_dump() for r in loop] != [r.model_dump() for r in many]:
        raise SystemExit("MISMATCH: recommend_many differs from recommend() in a loop")
    dup = contexts + contexts[: len(contexts) // 2]  # a third of the batch repeats earlier contexts
    out: dict[str, Any] = {}
    for label, batch in (("unique", contexts), ("with_repeats", dup)):
        t_loop = t_many = 0
        for r in range(rounds * 2):  # alternate which goes first
            gc.collect()
            c0 = time.thread_time_ns()
            if r % 2:
                kept = recommend_many(rec, batch)
                t_many += time.thread_time_ns() - c0
            else:
                kept = [rec.recommend(c) for c in batch]  # a loop that returns the results too
                t_loop += time.thread_time_ns() - c0
            assert len(kept) == len(batch)
        n = rounds * len(batch)
        out[label] = {"contexts": len(batch), "loop_per_s": n / t_loop * 1e9, "many_per_s": n / t_many * 1e9,
                      "speedup": t_loop / t_many}
    return out


def run_k(k: int, args: argparse.Namespace) -> dict[str, Any]:
    m = args.contexts
    pack, contexts = generate(k, m, seed=args.seed)
    exp = expected(pack, contexts)
    engines, rec = build_engines(k, pack, contexts, set(args.skip))
    for e in engines:
        e.n = min(m, 3)
        verify(e, exp)  # also warms up
        per = probe(e)
        e.n = max(3, min(m, int(args.budget / max(per, 1e-7) / args.rounds)))
        verify(e, exp)
    time_rounds(engines, args.rounds)
    floor = next(e for e in engines if e.name.startswith("floor"))
    floor_med = statistics.median(floor.lat)
    floor_tput = floor.calls / floor.cpu_ns * 1e9
    rows = {}
    for e in engines:
        lat = sorted(e.lat)
        med = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
        tput = e.calls / e.cpu_ns * 1e9 if e.cpu_ns else float("nan")
        rows[e.name] = {
            "median_us": med / 1000, "p99_us": p99 / 1000, "throughput_per_s": tput,
            "median_vs_floor": med / floor_med, "throughput_vs_floor": floor_tput / tput,
            "contexts": e.n, "samples": len(lat), "build_s": e.build_s,
        }
    book = rec.rulebook
    info = {
        "rules": k, "contexts": m, "gestures": len(pack["gestures"]),
        "mean_matches": statistics.mean(len(x) for x in exp),
        "match_rate": statistics.mean(len(x) for x in exp) / k,
        "units": book.matcher.unit_count, "engines": rows,
    }
    if not args.no_batch:
        # A backtest-sized batch of its own (the pipeline stages 512 contexts at a time).
        batch = generate_contexts(args.batch_contexts, seed=args.seed)
        info["batch"] = bench_batch(rec, batch, max(1, args.rounds // 2 + 1))
    for e in engines:
        close = getattr(e.fn, "close", None)
        if close:
            close()
    book.retire()
    return info


def print_k(info: dict[str, Any]) -> None:
    k = info["rules"]
    print(f"\nK = {k} rules, {info['gestures']} gestures, {info['mean_matches']:.1f} matches per context "
          f"({info['match_rate']:.1%}), {info['units']} rulesets")
    print(f"  {'engine':<24} {'median us':>10} {'p99 us':>10} {'ctx/s (cpu)':>12} {'x floor':>8} {'ctx':>5}")
    for name, r in info["engines"].items():
        print(f"  {name:<24} {r['median_us']:>10.1f} {r['p99_us']:>10.1f} {r['throughput_per_s']:>12.0f} "
              f"{r['median_vs_floor']:>8.1f} {r['contexts']:>5}")
    b = info.get("batch")
    if b:
        for label, x in b.items():
            print(f"  recommend_many vs loop ({label}, {x['contexts']} contexts): {x['many_per_s']:.0f} vs "
                  f"{x['loop_per_s']:.0f} ctx/s, x{x['speedup']:.2f}")


def markdown(out: dict[str, Any]) -> str:
    """The results as the Markdown table used in bench/README.md."""
    lines = [f"Build: {out['meta'].get('build', 'pure Python')}.", "",
             "| K | engine | median us | p99 us | contexts/s (CPU) | median / floor |",
             "|---|---|---|---|---|---|"]
    for k, info in out["ks"].items():
        for name, r in info["engines"].items():
            lines.append(f"| {int(k):,} | {name} | {r['median_us']:,.1f} | {r['p99_us']:,.1f} | "
                         f"{r['throughput_per_s']:,.0f} | {r['median_vs_floor']:.1f} |")
    lines += ["", "| K | matches/context | rulesets | batch | recommend_many vs loop, unique | with a third repeated |",
              "|---|---|---|---|---|---|"]
    for k, info in out["ks"].items():
        b = info.get("batch", {})
        u, d = b.get("unique", {}), b.get("with_repeats", {})
        lines.append(f"| {int(k):,} | {info['mean_matches']:.1f} | {info['units']} | {u.get('contexts', '-')} | "
                     f"x{u.get('speedup', float('nan')):.2f} | x{d.get('speedup', float('nan')):.2f} |")
    return "\n".join(lines)


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    from recommender import Recommender

    pack, contexts = generate(args.memory_k, 200, seed=args.seed)
    rec = Recommender(rules=[], packs=[pack], autoload=False)
    for c in contexts * 10:
        rec.recommend(c)
    gc.collect()
    start = rss_bytes()
    samples = [(0, start)]
    n = args.memory
    step = max(1, n // 10)
    t = time.perf_counter()
    for i in range(1, n + 1):
        rec.recommend(contexts[i % len(contexts)])
        if i % step == 0:
            gc.collect()
            samples.append((i, rss_bytes()))
    elapsed = time.perf_counter() - t
    end = samples[-1][1]
    out = {"calls": n, "rules": args.memory_k, "rss_start_mib": start / 2**20, "rss_end_mib": end / 2**20,
           "growth_mib": (end - start) / 2**20, "max_mib": max(s for _, s in samples) / 2**20,
           "samples": [(i, s / 2**20) for i, s in samples], "seconds": elapsed}
    print(f"RSS over {n} recommend() calls at K={args.memory_k}: {out['rss_start_mib']:.1f} -> "
          f"{out['rss_end_mib']:.1f} MiB (growth {out['growth_mib']:+.2f} MiB, max {out['max_mib']:.1f}), "
          f"{elapsed:.0f} s")
    return out


def meta(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("durable-rules", "zen-engine", "rule-engine", "pydantic", "service-recommender"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    from bench import build_label

    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "build": build_label(), "load_avg": os.getloadavg(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "quick": args.quick,
            "seed": args.seed, "rounds": args.rounds, "budget_s": args.budget, "versions": versions}


def _missing_peers(skip: set[str]) -> list[tuple[str, str]]:
    """The peer engines to run whose package is not installed: (peer, module)."""
    import importlib.util

    peers = [("zen", "zen"), ("rule-engine", "rule_engine")]
    return [(peer, module) for peer, module in peers if peer not in skip and importlib.util.find_spec(module) is None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about a minute: fewer contexts and rounds")
    ap.add_argument("--ks", default="10,100,1000,10000", help="rule counts, comma-separated")
    ap.add_argument("--contexts", type=int, default=None, help="contexts per K (default 200, quick 60)")
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default 5, quick 2)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds one engine may spend per round at one K; slow engines get fewer contexts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", action="append", default=[], choices=["durable", "zen", "rule-engine"])
    ap.add_argument("--no-batch", action="store_true", help="skip the recommend_many measurement")
    ap.add_argument("--batch-contexts", type=int, default=None,
                    help="contexts in the recommend_many batch (default 1000, quick 300)")
    ap.add_argument("--memory", type=int, default=0, metavar="N", help="only measure RSS over N recommend() calls")
    ap.add_argument("--memory-k", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS / "latest.json"))
    ap.add_argument("--markdown", metavar="JSON", help="print the tables of a results file as Markdown and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        try:
            results = json.loads(Path(args.markdown).read_text())
            print(markdown(results))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            ap.error(f"--markdown {args.markdown}: not a results file of this script ({type(exc).__name__}: {exc})")
        return 0
    if args.batch_contexts is not None and args.batch_contexts < 1:  # flags first, then the install
        ap.error("--batch-contexts: must be at least 1")
    missing = _missing_peers(set(args.skip)) if not args.memory else []
    if missing:
        from recommender.optional import hint

        print(f"error: {hint(f'the {missing[0][0]} peer', missing[0][1])} (or --skip {missing[0][0]})",
              file=sys.stderr)
        return 2
    args.contexts = args.contexts or (60 if args.quick else 200)
    args.batch_contexts = args.batch_contexts or (300 if args.quick else 1000)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.budget = args.budget or (0.25 if args.quick else 1.5)
    out: dict[str, Any] = {"meta": meta(args)}
    print(f"recommender build: {out['meta']['build']}")
    if args.memory:
        out["memory"] = run_memory(args)
    else:
        out["ks"] = {}
        for k in (int(x) for x in args.ks.split(",")):
            info = run_k(k, args)
            print_k(info)
            out["ks"][str(k)] = info
            sys.stdout.flush()
    path = Path(args.out)
    if args.memory and path.name == "latest.json":
        path = path.with_name("memory.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
