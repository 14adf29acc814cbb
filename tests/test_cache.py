"""The cache of parsed packs and compiled rulesets (``recommender.cache``, issue 17 item 3):
identical results, a changed file never served stale, damaged entries ignored and rebuilt,
invalid packs never stored, safe between processes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recommender import Recommender, RulePackError, cache as cache_mod
from recommender import pack_limits
from recommender.examples import load_examples

PACK = textwrap.dedent("""\
    pack: shop
    gestures:
      - id: coffee
        title: Free coffee
        category: freebie
        tier: meet
        script: "Have a coffee on us, {customer.name|friend}."
      - id: waive
        title: Waive the fee
        category: fee_waiver
        tier: recover
        cost: interaction.cost
        script: We waive the fee.
    rules:
      - id: long-wait
        when: interaction.wait_minutes ge 10
        then: coffee
        because: A long wait deserves a gesture.
      - id: loyal-fee
        when:
          all:
            - customer.tenure_years ge 5
            - interaction.issue in [billing, flat_tire]
        then: waive
        because: Loyal customers get the fee waived.
    """)
CTX = {"customer": {"tenure_years": 6}, "interaction": {"issue": "billing", "wait_minutes": 12, "cost": 20}}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(folder))
    monkeypatch.delenv("RECOMMENDER_CACHE", raising=False)
    return folder


def rules_dir(tmp_path: Path, text: str = PACK) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "shop.yaml").write_text(text)
    return folder


def fresh_cache() -> cache_mod.Cache:
    """The default cache as a new process would see it (nothing in memory)."""
    cache_mod._DEFAULT = None
    got = cache_mod.default()
    assert got is not None
    return got


def test_a_second_build_reads_packs_and_rulesets_from_the_cache(tmp_path, cache_dir):
    folder = rules_dir(tmp_path)
    first = fresh_cache()
    cold = Recommender([folder], autoload=False)
    assert first.stats.writes >= 2 and first.stats.hits == 0  # the pack, the compiled rulesets
    kinds = sorted({p.name.split("-")[0] for p in cache_dir.iterdir()})
    assert kinds == ["pack", "units"]
    warm_cache = fresh_cache()
    warm = Recommender([folder], autoload=False)
    assert warm_cache.stats.hits >= 2 and warm_cache.stats.misses == 0 and warm_cache.stats.writes == 0
    assert warm.recommend(CTX).model_dump() == cold.recommend(CTX).model_dump()
    assert warm.explain(CTX).model_dump() == cold.explain(CTX).model_dump()
    assert warm.ruleset_version == cold.ruleset_version
    assert [p.model_dump() for p in warm.rulebook.packs] == [p.model_dump() for p in cold.rulebook.packs]


def test_results_are_the_same_with_and_without_the_cache(monkeypatch, cache_dir):
    """The shipped packs and the installed plugins, every example context, cold and warm."""
    contexts = [c for _, _, c in load_examples()]
    monkeypatch.setenv("RECOMMENDER_CACHE", "0")
    off = Recommender()
    want = [off.explain(c).model_dump() for c in contexts]
    monkeypatch.delenv("RECOMMENDER_CACHE")
    for _ in range(2):  # cold, then warm
        fresh_cache()
        rec = Recommender()
        assert [rec.explain(c).model_dump() for c in contexts] == want


def test_a_changed_file_is_never_served_stale(tmp_path, cache_dir):
    folder = rules_dir(tmp_path)
    fresh_cache()
    assert Recommender([folder], autoload=False).recommend(CTX).gesture_ids() == ["waive", "coffee"]
    path = folder / "shop.yaml"
    st = path.stat()
    changed = PACK.replace("ge 10", "ge 15")  # same size, and the same modification time below
    assert len(changed) == len(PACK)
    path.write_text(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    c = fresh_cache()
    assert Recommender([folder], autoload=False).recommend(CTX).gesture_ids() == ["waive"]
    assert c.stats.writes >= 1  # read afresh and stored under its new content


def test_invalid_packs_are_never_stored_and_report_the_same_problems(tmp_path, cache_dir, monkeypatch):
    bad = PACK.replace("then: coffee", "then: cofee").replace("ge 5", "ge five")
    folder = rules_dir(tmp_path, bad)
    (folder / "other.yaml").write_text("pack: other\nrules: [\n")
    monkeypatch.setenv("RECOMMENDER_CACHE", "0")
    with pytest.raises(RulePackError) as off:
        Recommender([folder], autoload=False)
    monkeypatch.delenv("RECOMMENDER_CACHE")
    for _ in range(2):
        c = fresh_cache()
        with pytest.raises(RulePackError) as on:
            Recommender([folder], autoload=False)
        assert str(on.value) == str(off.value)
        assert "cofee" in str(on.value) and "other.yaml" in str(on.value)
    assert not any(p.name.startswith("pack-") for p in cache_dir.iterdir())
    assert c.stats.hits == 0


def test_the_caps_in_force_are_part_of_the_key(tmp_path, cache_dir, monkeypatch):
    folder = rules_dir(tmp_path)
    fresh_cache()
    Recommender([folder], autoload=False)
    monkeypatch.setattr(pack_limits, "MAX_RULES_PER_PACK", 1)
    fresh_cache()
    with pytest.raises(RulePackError, match="more than 1 rules in one pack"):
        Recommender([folder], autoload=False)


def _entries(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(kind + "-"))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "not a pickle", "empty", "another format"])
def test_a_damaged_entry_is_ignored_removed_and_rebuilt(tmp_path, cache_dir, damage):
    folder = rules_dir(tmp_path)
    fresh_cache()
    want = Recommender([folder], autoload=False).explain(CTX).model_dump()
    for entry in [*_entries(cache_dir, "pack"), *_entries(cache_dir, "units")]:
        blob = entry.read_bytes()
        if damage == "flip a byte":
            blob = blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:]
        elif damage == "truncate":
            blob = blob[: len(blob) // 2]
        elif damage == "not a pickle":  # a valid checksum over bytes that do not load
            payload = b"\x80\x05garbage"
            blob = blob[:7] + hashlib.sha256(payload).digest() + payload
        elif damage == "empty":
            blob = b""
        else:
            blob = b"RECC999" + blob[7:]
        entry.write_bytes(blob)
    c = fresh_cache()
    assert Recommender([folder], autoload=False).explain(CTX).model_dump() == want
    assert c.stats.bad >= 2 and c.stats.writes >= 2
    c = fresh_cache()  # rebuilt: whole again
    assert Recommender([folder], autoload=False).explain(CTX).model_dump() == want
    assert c.stats.bad == 0 and c.stats.misses == 0


def test_an_entry_is_checked_before_it_is_loaded(cache_dir):
    """What a damaged entry holds is never unpickled: the checksum comes first."""
    c = fresh_cache()
    c.put("pack", "k", {"x": 1})
    entry = _entries(cache_dir, "pack")[0]
    payload = pickle.dumps(SystemExit)  # would be built if loaded
    entry.write_bytes(entry.read_bytes()[:7] + b"\0" * 32 + payload)
    assert c.get("pack", "k") == {"x": 1}  # the copy in memory, unchanged
    assert fresh_cache().get("pack", "k") is None and not entry.exists()


def test_the_cache_can_be_turned_off(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_CACHE", "0")
    assert cache_mod.default() is None
    Recommender([rules_dir(tmp_path)], autoload=False)
    assert not cache_dir.exists()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_folder_others_can_write_to_turns_the_cache_off(tmp_path, cache_dir, caplog):
    cache_dir.mkdir(mode=0o700)
    os.chmod(cache_dir, 0o777)
    c = fresh_cache()
    Recommender([rules_dir(tmp_path)], autoload=False)
    assert not c.usable() and list(cache_dir.iterdir()) == []
    assert "must belong to this user and not be writable by others" in caplog.text


def test_the_least_recently_used_entries_go_past_the_size_bound(cache_dir):
    c = fresh_cache()
    for i in range(10):
        c.put("pack", f"k{i}", b"x" * 1000)
        os.utime(c._path("pack", f"k{i}"), (1_000_000 + i, 1_000_000 + i))
    (cache_dir / ".tmp-dead").write_bytes(b"")
    os.utime(cache_dir / ".tmp-dead", (0, 0))
    c.prune(max_bytes=6000)
    left = sorted(p.name for p in cache_dir.iterdir())
    assert left == [f"pack-k{i}.bin" for i in range(6, 10)]  # down to 3/4 of the bound, newest kept
    assert c.clear() == 4 and list(cache_dir.iterdir()) == []


CHILD = """
import json, sys
from recommender import Recommender, cache
rec = Recommender([sys.argv[1]])
out = [rec.explain(c).model_dump(mode="json") for c in json.loads(sys.argv[2])]
print(json.dumps({"out": out, "hits": cache.default().stats.hits}))
"""


def test_processes_share_the_cache_safely(tmp_path, cache_dir):
    """Four processes build from an empty cache at once, then one from the warm cache: the
    same answers, no temporary file left behind."""
    folder = rules_dir(tmp_path)
    contexts = json.dumps([CTX, {"interaction": {"issue": "flat_tire", "wait_minutes": 3}}])
    env = {**os.environ, "RECOMMENDER_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, "-c", CHILD, str(folder), contexts]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    warm = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert warm.returncode == 0, warm.stderr
    outs.append(json.loads(warm.stdout))
    assert all(o["out"] == outs[0]["out"] for o in outs)
    assert outs[-1]["hits"] >= 2
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".tmp-")]
