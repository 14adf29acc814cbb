"""An acknowledged write survives SIGKILL: every key the child printed is in the database."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from memory_fixtures import PACK, db_url, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import select as sql_select

from recommender.memory import open_store
from recommender.memory.models import Outcome

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

CHILD = textwrap.dedent("""
    import sys
    from recommender import Recommender
    from recommender.memory import open_store

    url, pack = sys.argv[1], eval(sys.argv[2])
    store = open_store(url)
    rec = Recommender([], packs=[pack], autoload=False)
    for i in range(100_000):
        result = rec.recommend({"customer": {"id": f"c-{i % 7}"}, "interaction": {"issue": "flat_tire", "cost": 20},
                                "business": {"id": "acme"}}, store=store)
        key = f"kill-{i}"
        store.record_outcome(result.decision_id, "waive_fee", "delivered", key)
        sys.stdout.write(key + "\\n")  # acknowledged: the commit has returned
        sys.stdout.flush()
""")


def test_acknowledged_outcomes_survive_sigkill(db_url: str) -> None:
    open_store(db_url, upgrade=True).close()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, db_url, repr(PACK)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + 40
    try:
        while buf.count(b"\n") < 40:  # let it get well into the stream
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                buf += os.read(fd, 65536)
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-stream: no chance to flush or clean up
        proc.wait(10)
    rest = proc.stdout.read()
    buf += rest
    assert proc.returncode == -signal.SIGKILL
    acknowledged = [line.decode() for line in buf.split(b"\n")[:-1]]  # the last piece may be partial
    assert len(acknowledged) >= 40

    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            stored = set(conn.execute(sql_select(Outcome.__table__.c.idempotency_key)).scalars())
    finally:
        store.close()
    missing = [k for k in acknowledged if k not in stored]
    assert not missing, f"acknowledged but lost: {missing}"
