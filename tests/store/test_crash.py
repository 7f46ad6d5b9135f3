"""Crash safety (DESIGN.md "Storage"): a delivery acknowledged before a SIGKILL survives it,
byte for byte, and the reopened store is consistent: counters agree with the rows and no
orphan or temporary message file remains."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailsrv.store import SQLiteStoreRegistry
from tests.store.crash_writer import message_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_acknowledged_deliveries_survive_sigkill(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Kill ~2 s after the first acknowledgement (start-up time varies with the machine's load).
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 60)
    first = child.stdout.readline() if ready else b""
    try:
        time.sleep(2.0)
    finally:
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    out = first + out
    acknowledged = {}
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) == 2:  # the last line may be cut by the kill
            acknowledged[int(parts[1])] = int(parts[0])
    assert len(acknowledged) > 20, err.decode()[-2000:]
    print(f"{len(acknowledged)} deliveries acknowledged before SIGKILL")

    registry = SQLiteStoreRegistry(tmp_path)
    try:
        store = registry.open("crash")
        box = store.mailbox("INBOX")
        rows = store.messages(box.id)
        by_uid = {m.uid: m for m in rows}
        for uid, n in acknowledged.items():
            m = by_uid.get(uid)
            assert m is not None, f"acknowledged UID {uid} lost"
            assert store.read(m.message_id) == message_for(n)
            assert store.part_tree(m.message_id).envelope.subject == f"crash {n}"  # type: ignore[union-attr]
        # Every row has its complete file; the counters agree with the rows.
        for m in rows:
            assert m.size == len(store.read(m.message_id))
        assert box.messages == len(rows)
        assert box.size == sum(m.size for m in rows) == store.usage()
        assert box.unseen == sum(1 for m in rows if "\\Seen" not in m.flags)
        assert box.uidnext > max(by_uid, default=0)
        assert box.highest_modseq >= max((m.modseq for m in rows), default=0)
        # No orphan or temporary file survives the reopen.
        files = {p.name for p in (tmp_path / "accounts" / "crash" / "msg").rglob("*") if p.is_file()}
        assert files == {str(m.message_id) for m in rows}
        # The store works on after the crash.
        registry.close_all()
        store = registry.open("crash")
        assert store.mailbox("INBOX").messages == len(rows)
    finally:
        registry.close_all()
