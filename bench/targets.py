"""Issue 17's targets, each measured against its baseline in the same run (ratios).

    python -m bench.targets                  # every target below, one run (several minutes)
    python -m bench.targets plugins          # recommend() p50: the three plugins against none
    python -m bench.targets startup          # whole processes: warm cache against cold; the CLI
    python -m bench.targets scale            # loading 10,000 / 20,000 / 60,000 rules, cold and warm
    python -m bench.targets --quick          # about a minute: fewer samples, 1,000-rule scale rows
    python -m bench.targets --json           # the report as JSON (also written to bench/results/)

* **plugins**: ``Recommender.recommend()`` in one process over the example contexts, in
  rounds that rotate which recommender goes first (so load on the machine hits all alike):
  without plugins, with the three shipped plugins as installed (trusted hooks inline under
  the watchdog), the same with every hook forced onto a worker thread (the hand-off per
  request before issue 17), with ``plugin_timeout=0``, and with the plugins' packs in the
  rulebooks but their hooks never called (what the larger rulebooks cost by themselves); then,
  to split what remains, the same packs given the contexts as the plugins' enrichers leave
  them (what the facts they add cost our stages: more rules match), and the plugins' hooks
  replaced by hooks that do nothing, on those contexts (the hooks' hand-off and the pipeline
  around them, without their work). p50 of the wall clock per call and
  process CPU per call (every thread), each as a ratio to no plugins; on every example
  context, and on those of the plugins' verticals only. Target: plugins add <= 25% to p50.
* **startup**: fresh processes, rotated in rounds: ``python -c "import pydantic"`` (the
  baseline), ``from pydantic import BaseModel`` and ``import typer`` (what any pydantic model
  and the CLI framework cost by themselves), ``import recommender`` (lazy),
  ``import recommender.core`` (the library), ``recommender --help``, ``Recommender()`` with an
  empty cache folder (cold), a
  warm one, and the cache off; each of the last three also builds the three plugin
  verticals' rulebooks (the shipped packs and the three plugins); ``recommender recommend
  ctx.json`` (an auto-repair context, so a plugin runs) cold and warm, and warm with
  ``--json``; the same warm recommendation with no CLI at all (the library imported, the
  context read, the result printed as JSON: the floor of any front end). Times: the whole
  process (wall clock, from outside) and, for ``Recommender()``, the construction measured
  inside the process. Targets: warm >= 10x faster than cold; ``recommender recommend`` <=
  3x ``import pydantic``.
* **scale**: a fresh process per row loads generated packs (``bench/gen.py``) of 10,000 rules
  (one pack file), 20,000 (two files: the cap per business) and 60,000 (six files): from
  YAML with an empty cache folder (cold), again from the warm cache, and as in-memory dicts.
  Past the caps (``recommender/pack_limits.py``) a row reports the refusal and its time,
  then the load with the caps raised in that process. Time to the built rulebook, and RSS
  growth per 1,000 rules. Targets: 10,000 rules <= 10 s, 60,000 <= 60 s, cold.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VERTICALS = ("auto_repair", "fitness", "insurance")


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# -- plugins ------------------------------------------------------------------------------


def _examples() -> list[dict[str, Any]]:
    from recommender.examples import load_examples

    return [ctx for _, _, ctx in load_examples()]


def _enriched(rec: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    """``ctx`` as its business's enrichers leave it (as the caller's own values)."""
    from recommender.context import parse_context
    from recommender.pipeline import merge_unset

    c = parse_context(ctx)
    for _, fn, args in rec._tenant(c.business).enrichers:
        updates = fn(**{a: {"context": c, "business": c.business}[a] for a in args})
        if updates:
            c = merge_unset(c, updates)
    return c.model_dump(mode="json", exclude_unset=True)


def _nothing() -> None:
    """A hook that does nothing (what the hooks' hand-off and the pipeline around them cost)."""
    return None


def bench_plugins(rounds: int, per_round: int) -> dict[str, Any]:
    """recommend() p50 and CPU per call: no plugins, plugins (as shipped), plugins forced onto
    workers, plugins with no time limit; and, to tell apart what the plugins cost, their packs
    without their hooks (on the contexts as given, and as their enrichers leave them) and
    their hooks replaced by ones that do nothing (on the enriched contexts)."""
    from recommender import Business, Recommender

    examples = _examples()
    sets = {"every example": examples,
            "the plugins' verticals": [c for c in examples if (c.get("business") or {}).get("vertical") in VERTICALS]}
    forced = Recommender()
    forced.host.trusted = lambda steps: False  # type: ignore[method-assign]  # a hand-off per request, as before
    packs_only = Recommender()  # the plugins' packs in the rulebooks, their hooks never called
    idle = Recommender()  # the plugins' packs, and hooks that return nothing
    for v in VERTICALS:
        packs_only._tenant(Business(vertical=v))
        idle._tenant(Business(vertical=v))
    for tenant in packs_only._builds.values():
        tenant.enrichers, tenant.adjusters = [], []
    for tenant in idle._builds.values():
        tenant.enrichers = [(name, _nothing, []) for name, _, _ in tenant.enrichers]
        tenant.adjusters = [(name, _nothing, []) for name, _, _ in tenant.adjusters]
    shipped = Recommender()
    enriched = {id(c): _enriched(shipped, c) for c in examples}
    recs: dict[str, Any] = {
        "no plugins": Recommender(autoload=False),
        "three plugins": shipped,
        "three plugins, hooks on a worker": forced,
        "three plugins, plugin_timeout=0": Recommender(plugin_timeout=0),
        "the plugins' packs only, no hooks": packs_only,
        "their packs, enriched contexts, no hooks": packs_only,
        "hooks that do nothing, enriched contexts": idle,
    }
    given = {n: (lambda c: enriched[id(c)]) if "enriched" in n else (lambda c: c) for n in recs}
    out: dict[str, Any] = {"rounds": rounds, "calls_per_round": per_round, "sets": {}}
    names = list(recs)
    for label, contexts in sets.items():
        inputs = {n: [given[n](c) for c in contexts] for n in names}
        for n, rec in recs.items():
            for c in inputs[n] * 3:  # warm-up: rulebooks built, hooks trusted
                rec.recommend(c)
        lat: dict[str, list[int]] = {n: [] for n in names}
        cpu: dict[str, int] = {n: 0 for n in names}
        calls: dict[str, int] = {n: 0 for n in names}
        clock, pcpu = time.perf_counter_ns, time.process_time_ns
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                f, sink, cs = recs[n].recommend, lat[n], inputs[n]
                gc.collect()
                c0 = pcpu()
                for i in range(per_round):
                    ctx = cs[i % len(cs)]
                    t0 = clock()
                    f(ctx)
                    sink.append(clock() - t0)
                cpu[n] += pcpu() - c0
                calls[n] += per_round
        base = _median(lat["no plugins"])
        base_cpu = cpu["no plugins"] / calls["no plugins"]
        out["sets"][label] = {
            "contexts": len(contexts),
            "rows": {n: {"p50_us": _median(lat[n]) / 1000, "p50_ratio": _ratio(_median(lat[n]), base),
                         "cpu_us": cpu[n] / calls[n] / 1000, "cpu_ratio": _ratio(cpu[n] / calls[n], base_cpu)}
                     for n in names},
        }
    three = out["sets"]["every example"]["rows"]["three plugins"]["p50_ratio"]
    verticals = out["sets"]["the plugins' verticals"]["rows"]["three plugins"]["p50_ratio"]
    out["target"] = {"what": "three plugins add <= 25% to recommend()'s p50", "every_example": three,
                     "verticals_only": verticals, "met": three <= 1.25}
    return out


# -- whole processes -------------------------------------------------------------------------

_BUILD = """
import json, sys, time
t0 = time.perf_counter()
from recommender import Recommender
t1 = time.perf_counter()
rec = Recommender()
t2 = time.perf_counter()
for v in {verticals!r}:
    rec.rulebook_for({{"vertical": v}})
t3 = time.perf_counter()
from recommender import cache
c = cache.default()
print(json.dumps({{"import_s": t1 - t0, "construct_s": t2 - t1, "with_verticals_s": t3 - t1,
                  "hits": c.stats.hits if c else 0, "misses": c.stats.misses if c else 0}}))
"""


#: A warm recommendation without the CLI: what the library alone costs a fresh process (the
#: result printed indented, as ``--json`` prints it).
_LIBRARY = """
import sys
from pydantic_core import from_json
from recommender import Recommender
with open(sys.argv[1], "rb") as f:
    context = from_json(f.read())
print(Recommender().recommend(context).model_dump_json(indent=2))
"""


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("recommender")
    return [str(script)] if script.exists() else [sys.executable, "-m", "recommender.cli"]


def _run(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    inside: dict[str, Any] = {}
    last = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    if last and last[0].startswith("{"):
        try:
            inside = json.loads(last[0])
        except ValueError:
            inside = {}
    return wall, inside


def bench_startup(repeat: int) -> dict[str, Any]:
    """Whole processes (see the module's docstring), ``repeat`` rounds, rotated."""
    work = Path(tempfile.mkdtemp(prefix="recommender-startup-"))
    try:
        ctx = work / "ctx.json"
        example = next(c for c in _examples() if (c.get("business") or {}).get("vertical") == "auto_repair")
        ctx.write_text(json.dumps(example))
        warm_dir = work / "warm-cache"
        # processes as a user runs them: bytecode cached (PYTHONDONTWRITEBYTECODE would make an
        # editable install compile every module from source in every process)
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("RECOMMENDER_CACHE") and k != "PYTHONDONTWRITEBYTECODE"}
        build = [sys.executable, "-c", _BUILD.format(verticals=VERTICALS)]
        recommend = [*_cli(), "recommend", str(ctx)]
        recommend_json = [*recommend, "--json"]
        library = [sys.executable, "-c", _LIBRARY, str(ctx)]
        fresh = iter(range(10**9))

        def cold_env() -> dict[str, str]:
            return {**base_env, "RECOMMENDER_CACHE_DIR": str(work / f"cold-{next(fresh)}")}

        cases: dict[str, tuple[list[str], Callable[[], dict[str, str]]]] = {
            "python -c 'import pydantic'": ([sys.executable, "-c", "import pydantic"], lambda: base_env),
            "python -c 'from pydantic import BaseModel'": ([sys.executable, "-c", "from pydantic import BaseModel"],
                                                           lambda: base_env),
            "python -c 'import typer'": ([sys.executable, "-c", "import typer"], lambda: base_env),
            "python -c 'import recommender'": ([sys.executable, "-c", "import recommender"], lambda: base_env),
            "python -c 'import recommender.core'": ([sys.executable, "-c", "import recommender.core"], lambda: base_env),
            "recommender --help": ([*_cli(), "--help"], lambda: base_env),
            "Recommender(), cold cache": (build, cold_env),
            "Recommender(), warm cache": (build, lambda: {**base_env, "RECOMMENDER_CACHE_DIR": str(warm_dir)}),
            "Recommender(), cache off": (build, lambda: {**base_env, "RECOMMENDER_CACHE": "0"}),
            "recommender recommend, cold cache": (recommend, cold_env),
            "recommender recommend, warm cache": (recommend, lambda: {**base_env, "RECOMMENDER_CACHE_DIR": str(warm_dir)}),
            "recommender recommend --json, warm cache": (recommend_json,
                                                         lambda: {**base_env, "RECOMMENDER_CACHE_DIR": str(warm_dir)}),
            "warm recommend, the library alone (no CLI)": (library,
                                                           lambda: {**base_env, "RECOMMENDER_CACHE_DIR": str(warm_dir)}),
        }
        for cmd in (build, recommend, library):  # fill the warm cache
            _run(cmd, {**base_env, "RECOMMENDER_CACHE_DIR": str(warm_dir)}, str(work))
        walls: dict[str, list[float]] = {n: [] for n in cases}
        inside: dict[str, list[dict[str, Any]]] = {n: [] for n in cases}
        names = list(cases)
        load_before = _load()
        for r in range(repeat):
            for n in names[r % len(names):] + names[:r % len(names)]:
                cmd, env = cases[n]
                wall, got = _run(cmd, env(), str(work))
                walls[n].append(wall)
                if got:
                    inside[n].append(got)
            for d in work.glob("cold-*"):
                shutil.rmtree(d, ignore_errors=True)
        rows: dict[str, Any] = {}
        for n in names:
            row: dict[str, Any] = {"process_s": _median(walls[n]), "samples": len(walls[n])}
            if inside[n]:
                for k in ("import_s", "construct_s", "with_verticals_s"):
                    row[k] = _median([x[k] for x in inside[n]])
                row["cache_hits"], row["cache_misses"] = inside[n][-1]["hits"], inside[n][-1]["misses"]
            rows[n] = row
        pyd = rows["python -c 'import pydantic'"]["process_s"]
        cold, warm = rows["Recommender(), cold cache"], rows["Recommender(), warm cache"]
        cli_warm = rows["recommender recommend, warm cache"]["process_s"]
        target = {
            "construct_cold_over_warm": _ratio(cold["construct_s"], warm["construct_s"]),
            "with_verticals_cold_over_warm": _ratio(cold["with_verticals_s"], warm["with_verticals_s"]),
            "process_cold_over_warm": _ratio(cold["process_s"], warm["process_s"]),
            "cli_warm_over_import_pydantic": _ratio(cli_warm, pyd),
            "cli_json_warm_over_import_pydantic": _ratio(rows["recommender recommend --json, warm cache"]["process_s"], pyd),
            "library_warm_over_import_pydantic": _ratio(rows["warm recommend, the library alone (no CLI)"]["process_s"], pyd),
            "help_over_import_pydantic": _ratio(rows["recommender --help"]["process_s"], pyd),
            "basemodel_over_import_pydantic": _ratio(rows["python -c 'from pydantic import BaseModel'"]["process_s"], pyd),
        }
        target["met_warm_10x"] = target["with_verticals_cold_over_warm"] >= 10
        target["met_cli_3x"] = target["cli_warm_over_import_pydantic"] <= 3
        return {"repeat": repeat, "load_before": load_before, "load_after": _load(), "rows": rows, "target": target}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- scale ---------------------------------------------------------------------------------


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def pack_yaml(pack: dict[str, Any]) -> str:
    """A generated pack (``bench/gen.py``) written as YAML as people write packs (a block per
    gesture and rule), compactly enough that 10,000 rules fit the 2 MiB cap on one file."""
    lines = [f"pack: {_yaml_str(pack['pack'])}", f"version: {_yaml_str(pack['version'])}", "gestures:"]
    for g in pack["gestures"]:
        lines.append(f"  - id: {g['id']}")
        for key in ("title", "category", "tier", "authority", "script"):
            lines.append(f"    {key}: {_yaml_str(g[key])}")
        lines.append(f"    cost: {g['cost']!r}")
    lines.append("rules:")
    for r in pack["rules"]:
        conds = ", ".join(_yaml_str(c) for c in r["when"]["all"])
        lines += [f"  - id: {r['id']}", f"    when: {{all: [{conds}]}}", f"    then: {r['then']}",
                  f"    priority: {r['priority']}", f"    because: {r['because']}"]
    return "\n".join(lines) + "\n"


def scale_packs(total: int, per_pack: int = 10_000) -> list[dict[str, Any]]:
    """``total`` generated rules in packs of at most ``per_pack``, ids distinct across packs."""
    from .gen import generate_pack

    packs = []
    for i in range(0, total, per_pack):
        n = min(per_pack, total - i)
        p = generate_pack(n, seed=1 + i // per_pack, name=f"gen{i // per_pack}")
        tag = f"p{i // per_pack}-"
        for g in p["gestures"]:
            g["id"] = tag + g["id"]
        for r in p["rules"]:
            r["id"], r["then"] = tag + r["id"], tag + r["then"]
        packs.append(p)
    return packs


_SCALE_CHILD = """
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
mode, where, raise_caps, book_cap = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
from recommender import Recommender, RulePackError
from recommender import pack_limits
import recommender.context, recommender.packs, recommender.rulebook, recommender.cache  # imports are not the load
pack_limits.MAX_RULES_PER_BOOK = 10**6 if raise_caps else book_cap
if raise_caps:
    pack_limits.MAX_GESTURES_PER_BOOK = 10**6
packs = None
if mode == "dict":
    with open(where) as f:
        packs = json.load(f)
before = rss()
t = time.perf_counter()
try:
    if packs is not None:
        rec = Recommender([], packs=packs, autoload=False)
    else:
        rec = Recommender([where], autoload=False)
    book = rec.rulebook
    out = {"ok": True, "rules": len(book.rules), "units": book.matcher.unit_count}
except RulePackError as exc:
    out = {"ok": False, "refused": str(exc).splitlines()[0][:300]}
out["seconds"] = time.perf_counter() - t
out["rss_mib"] = (rss() - before) / 2**20
c = recommender.cache.default()
out["cache_hits"], out["cache_misses"] = (c.stats.hits, c.stats.misses) if c else (0, 0)
print(json.dumps(out))
"""


def bench_scale(sizes: list[int], per_pack: int | None = None, book_cap: int | None = None) -> dict[str, Any]:
    """Fresh processes: each size loaded from YAML cold, from YAML warm, and as dicts, in packs
    of ``per_pack`` rules (the cap per pack). Past ``book_cap`` rules (the cap per business)
    the load is refused as it stands, then measured with the caps raised."""
    from recommender import pack_limits

    per_pack = per_pack or pack_limits.MAX_RULES_PER_PACK
    book_cap = book_cap or pack_limits.MAX_RULES_PER_BOOK
    work = Path(tempfile.mkdtemp(prefix="recommender-scale-"))
    rows: list[dict[str, Any]] = []
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_CACHE")}
        for total in sizes:
            packs = scale_packs(total, per_pack)
            folder = work / f"rules-{total}"
            folder.mkdir()
            for p in packs:
                (folder / f"{p['pack']}.yaml").write_text(pack_yaml(p), encoding="utf-8")
            as_json = work / f"packs-{total}.json"
            as_json.write_text(json.dumps(packs))
            biggest = max(f.stat().st_size for f in folder.iterdir())
            capped = total > book_cap
            cache = work / f"cache-{total}"
            env = {**base_env, "RECOMMENDER_CACHE_DIR": str(cache)}

            def row(mode: str, where: Path, label: str, raise_caps: bool) -> None:
                _, got = _run([sys.executable, "-c", _SCALE_CHILD, mode, str(where), "1" if raise_caps else "0",
                               str(book_cap)], env, str(work))
                out = {"rules": total, "packs": len(packs), "largest_file_kib": biggest // 1024, "load": label,
                       "caps_raised": raise_caps, **got}
                if got.get("ok"):
                    out["rss_mib_per_1000_rules"] = got["rss_mib"] / total * 1000
                rows.append(out)

            if capped:  # as the caps stand: refused (how long that takes), then with the caps raised
                row("yaml", folder, "YAML, cold cache", False)
                shutil.rmtree(cache, ignore_errors=True)
            row("yaml", folder, "YAML, cold cache", capped)
            row("yaml", folder, "YAML, warm cache", capped)
            row("dict", as_json, "in-memory dicts", capped)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
        caps = {"rules per pack file": per_pack, "rules per business": book_cap,
                "bytes per pack file": pack_limits.MAX_PACK_BYTES}
        target: dict[str, Any] = {}
        for total, limit in ((10_000, 10.0), (60_000, 60.0)):
            cold = [r for r in rows if r["rules"] == total and r["load"] == "YAML, cold cache" and r.get("ok")]
            if cold:
                target[f"{total}_yaml_cold_s"] = cold[0]["seconds"]
                target[f"{total}_met"] = cold[0]["seconds"] <= limit
        return {"caps": caps, "rows": rows, "target": target, "load": _load()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- report --------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
    print(f"recommender build: {meta['build']}; Python {meta['python']}; {meta['cpus']} CPUs; "
          f"load average at start {meta['load_start']}, at end {meta.get('load_end')}")
    p = report.get("plugins")
    if p:
        print(f"\nplugins: recommend() per call ({p['rounds']} rounds of {p['calls_per_round']} calls each)")
        for label, s in p["sets"].items():
            print(f"  {label} ({s['contexts']} contexts)")
            print(f"    {'':<42} {'p50 us':>8} {'x none':>7} {'CPU us':>8} {'x none':>7}")
            for n, r in s["rows"].items():
                print(f"    {n:<42} {r['p50_us']:>8.1f} {r['p50_ratio']:>7.2f} {r['cpu_us']:>8.1f} {r['cpu_ratio']:>7.2f}")
        t = p["target"]
        print(f"  target (<= 1.25x on every example): {t['every_example']:.2f}x ({'met' if t['met'] else 'MISSED'}); "
              f"the plugins' verticals only: {t['verticals_only']:.2f}x")
    s = report.get("startup")
    if s:
        print(f"\nstartup: whole processes, median of {s['repeat']} (load {s['load_before']} -> {s['load_after']})")
        print(f"  {'':<44} {'process s':>10} {'construct s':>12} {'+3 verticals s':>15}")
        for n, r in s["rows"].items():
            c = f"{r['construct_s']:.3f}" if "construct_s" in r else "-"
            v = f"{r['with_verticals_s']:.3f}" if "with_verticals_s" in r else "-"
            print(f"  {n:<44} {r['process_s']:>10.3f} {c:>12} {v:>15}")
        t = s["target"]
        print(f"  warm vs cold: Recommender() {t['construct_cold_over_warm']:.1f}x, with the three verticals "
              f"{t['with_verticals_cold_over_warm']:.1f}x, whole process {t['process_cold_over_warm']:.1f}x "
              f"(target >= 10x: {'met' if t['met_warm_10x'] else 'MISSED'})")
        print(f"  recommender recommend (warm) / import pydantic: {t['cli_warm_over_import_pydantic']:.2f}x "
              f"(target <= 3x: {'met' if t['met_cli_3x'] else 'MISSED'}); with --json: "
              f"{t['cli_json_warm_over_import_pydantic']:.2f}x; the library alone, no CLI: "
              f"{t['library_warm_over_import_pydantic']:.2f}x; recommender --help: "
              f"{t['help_over_import_pydantic']:.2f}x; from pydantic import BaseModel alone: "
              f"{t['basemodel_over_import_pydantic']:.2f}x")
    sc = report.get("scale")
    if sc:
        print(f"\nscale: fresh process per row (caps: {sc['caps']})")
        print(f"  {'rules':>7} {'files':>5} {'load':<18} {'caps':<7} {'seconds':>8} {'RSS MiB':>8} {'MiB/1k':>7}"
              f" {'cache hits/misses':>18}")
        for r in sc["rows"]:
            what = f"{r['seconds']:>8.2f} {r['rss_mib']:>8.1f} {r.get('rss_mib_per_1000_rules', float('nan')):>7.1f}" \
                   f" {r.get('cache_hits', 0):>9}/{r.get('cache_misses', 0)}" \
                if r.get("ok") else f"{r['seconds']:>8.2f}  refused: {r.get('refused', '?')[:80]}"
            print(f"  {r['rules']:>7,} {r['packs']:>5} {r['load']:<18} {'raised' if r['caps_raised'] else 'as is':<7} {what}")
        for k, v in sc["target"].items():
            print(f"  {k}: {v if isinstance(v, bool) else round(v, 2)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("what", nargs="*", metavar="{plugins,startup,scale}", help="which targets (default: all)")
    ap.add_argument("--quick", action="store_true", help="fewer samples; scale rows of 1,000 and 2,000 rules")
    ap.add_argument("--rounds", type=int, default=None, help="plugins: rounds (default 20, quick 4)")
    ap.add_argument("--calls", type=int, default=None, help="plugins: calls per recommender per round (default 200)")
    ap.add_argument("--repeat", type=int, default=None, help="startup: processes per case (default 9, quick 3)")
    ap.add_argument("--sizes", default=None, help="scale: rule counts, comma-separated (default 10000,20000,60000)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--out", default=str(RESULTS / "targets.json"), help="where the JSON report goes ('' for nowhere)")
    args = ap.parse_args(argv)
    what = set(args.what or ["plugins", "startup", "scale"])
    unknown = what - {"plugins", "startup", "scale"}
    if unknown:
        ap.error(f"unknown target {sorted(unknown)[0]!r}: choose from plugins, startup, scale")
    for name, value in (("--rounds", args.rounds), ("--calls", args.calls), ("--repeat", args.repeat)):
        if value is not None and value < 1:
            ap.error(f"{name}: must be at least 1")
    try:
        sizes = [int(x) for x in (args.sizes or ("1000,2000" if args.quick else "10000,20000,60000")).split(",")]
    except ValueError:
        ap.error(f"--sizes: expected rule counts separated by commas, got {args.sizes!r}")
    if any(n < 1 for n in sizes):
        ap.error("--sizes: every rule count must be at least 1")
    from bench import build_label

    import platform

    report: dict[str, Any] = {"meta": {"build": build_label(), "python": platform.python_version(),
                                       "cpus": os.cpu_count(), "load_start": _load(),
                                       "date": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    if "plugins" in what:
        report["plugins"] = bench_plugins(args.rounds or (4 if args.quick else 20), args.calls or 200)
    if "startup" in what:
        report["startup"] = bench_startup(args.repeat or (3 if args.quick else 9))
    if "scale" in what:
        report["scale"] = bench_scale(sizes)
    report["meta"]["load_end"] = _load()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
