"""Peak anonymous memory (RssAnon) of a process while a block runs, sampled every few ms.
Anonymous memory is what the daemon allocates; file pages mapped for reading (the store
parses stored messages through a mapping) are page cache the kernel can drop, so VmHWM,
which counts them too, would not tell."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


@contextmanager
def anonymous_growth(pid: int) -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak growth of RssAnon in octets."""
    before = rss_anon(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth = [0]
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth[0] = peak[0] - before
