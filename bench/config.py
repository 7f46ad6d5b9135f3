#!/usr/bin/env python3
"""Dynamic config benchmark: loading, address lookup and one change, by number of accounts.

Each account has two addresses in one domain. A change (`add_account`) re-validates the whole
document, writes it to a temporary file, fsyncs, renames and fsyncs the directory, on the
calling thread: this is how long an admin change blocks the daemon.

    python bench/config.py [--accounts N ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: the checkout, not bench/, goes first on sys.path, so mailsrv and tests import
# from it and bench/queue.py cannot shadow the standard library's queue module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import tomli_w  # noqa: E402

from mailsrv.address import Address  # noqa: E402
from mailsrv.config import DynamicConfigStore  # noqa: E402


def run(accounts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dynamic.toml"
        doc = {
            "domains": {"example.org": {}},
            "accounts": {
                f"u{i}": {"domain": "example.org", "addresses": [f"u{i}@example.org", f"other{i}@example.org"]}
                for i in range(accounts)
            },
        }
        path.write_bytes(tomli_w.dumps(doc).encode())
        start = time.perf_counter()
        store = DynamicConfigStore(path)
        loaded = time.perf_counter()
        probes = [Address.parse(f"U{i}+tag@example.org") for i in range(0, accounts, max(1, accounts // 1000))]
        t = time.perf_counter()
        for _ in range(10):
            for a in probes:
                store.lookup(a)
        lookup_us = (time.perf_counter() - t) / (10 * len(probes)) * 1e6
        t = time.perf_counter()
        store.add_account("new", "new@example.org")
        change = time.perf_counter() - t
        print(
            f"{accounts:>6} accounts: load {(loaded - start) * 1000:7.1f} ms, "
            f"lookup (catchall) {lookup_us:5.2f} us, one change {change * 1000:7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="*", default=[100, 1000, 10000])
    for n in parser.parse_args().accounts:
        run(n)


if __name__ == "__main__":
    main()
