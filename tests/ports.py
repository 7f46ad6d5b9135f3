"""Port numbers for servers that the tests start in another process (the daemon, slapd,
smtp-sink), which must be told a number before they bind.

Asking the kernel for port 0 and closing the socket is racy: the number comes from the
ephemeral range, so any outgoing connection made meanwhile (by this or another xdist worker)
may take it as its local port, and the daemon then fails with "Address already in use". So
numbers are handed out below the ephemeral range, where the kernel never allocates, from a
block of its own per xdist worker, and each is checked with a bind on TCP and UDP first.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Sequence
from pathlib import Path

_LOWEST = 10000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    top = max(_ephemeral_floor(), _LOWEST + 1000)
    size = (top - _LOWEST) // max(count, index + 1)
    start = _LOWEST + index * size
    return range(start, start + size)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


_BLOCK = _worker_block()
# Start at a point that depends on the pid, so two test runs at once rarely walk the same numbers.
_NEXT = itertools.cycle(itertools.chain(_BLOCK[os.getpid() % len(_BLOCK) :], _BLOCK[: os.getpid() % len(_BLOCK)]))


def free_port() -> int:
    """A loopback port nobody holds now and the kernel will not hand out as a client port."""
    for _ in range(len(_BLOCK)):
        port = next(_NEXT)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_BLOCK}")


def free_port_offset(ports: Sequence[int]) -> int:
    """An offset that moves every one of `ports` (e.g. localserve's fixed ports, for
    `--port-offset`) into this worker's block, onto numbers nobody holds now."""
    low, high = min(ports), max(ports)
    first, last = _BLOCK.start - low, _BLOCK.stop - 1 - high
    if first > last:
        raise RuntimeError(f"ports {low}-{high} do not fit in {_BLOCK}")
    for _ in range(100):
        offset = random.randint(first, last)
        if all(_bindable(port + offset) for port in ports):
            return offset
    raise RuntimeError(f"no free offset for ports {low}-{high} in {_BLOCK}")
