#!/usr/bin/env python3
"""CPU per message of inbound mail authentication, in process: `MailAuthenticator.evaluate_sync`,
`evaluate` and `ops.mailauth.authenticate_inbound` for the inputs of bench/smtp.py (MAIL FROM
bench@example.net, HELO client.example.net, 127.0.0.1, no DKIM signature, a 10 KB message) with
every DNS answer cached, served by tests/dnsserver.py. Prints microseconds of thread CPU per call
(`time.thread_time`), the best of several rounds. A component figure, usable on a loaded machine:

    python bench/mailauth.py [--calls N] [--rounds R] [--spf-record TEXT] [--dmarc-record TEXT]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from mailsrv.address import Address  # noqa: E402
from mailsrv.dns.authresults import MailAuthenticator  # noqa: E402
from mailsrv.dns.resolver import Resolver  # noqa: E402
from mailsrv.ops.delivery import Envelope, Trace  # noqa: E402
from mailsrv.ops.mailauth import authenticate_inbound  # noqa: E402
from tests.dnsserver import DNSServer  # noqa: E402

HEADER = (
    b"Received: from client.example.net ([127.0.0.1])\r\n"
    b"\tby mail.example.org with ESMTP id 54b5cb76;\r\n"
    b"\tMon,  7 Dec 2026 05:58:47 +0000\r\n"
    b"From: <bench@example.net>\r\n"
    b"To: <alice@example.org>\r\n"
    b"Date: Mon,  7 Dec 2026 05:58:47 +0000 (UTC)\r\n"
    b"Message-Id: <2ca1.0003.0000@client.example.net>\r\n"
    b"\r\n"
)
MESSAGE = HEADER + (b"X" * 78 + b"\r\n") * 128


def run_sync(calls: int, f: Callable[[], Any]) -> float:
    start = time.thread_time()
    for _ in range(calls):
        f()
    return (time.thread_time() - start) / calls * 1e6


def run_async(calls: int, f: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    start = time.thread_time()
    for _ in range(calls):
        coro = f()
        try:
            coro.send(None)
        except StopIteration:
            continue
        raise SystemExit("the call did not complete at once")
    return (time.thread_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spf-record", help="TXT of example.net (default: none, NXDOMAIN as in bench/smtp.py)")
    parser.add_argument("--dmarc-record", help="TXT of _dmarc.example.net (default: none)")
    args = parser.parse_args()
    with DNSServer() as dns:
        dns.negative_ttl = 300
        if args.spf_record:
            dns.set("example.net", "TXT", args.spf_record)
        if args.dmarc_record:
            dns.set("_dmarc.example.net", "TXT", args.dmarc_record)
        resolver = Resolver(SimpleNamespace(), [dns.address], timeout=2, run_in_pool=_no_pool)
        auth = MailAuthenticator(resolver, "mail.example.org")
        sender, helo, ip = "bench@example.net", "client.example.net", "127.0.0.1"
        server: Any = SimpleNamespace(mail_auth=auth)
        envelope = Envelope(Address.parse(sender), trace=Trace(helo=helo, remote_ip=ip))
        first = auth.evaluate_sync(MESSAGE, sender, helo, ip)  # warms the DNS cache
        print("Authentication-Results:", first.header_value().replace("\r\n\t", " "))
        figures: dict[str, list[float]] = {"evaluate_sync": [], "evaluate": [], "authenticate_inbound": []}
        for _ in range(args.rounds):
            figures["evaluate_sync"].append(run_sync(args.calls, lambda: auth.evaluate_sync(MESSAGE, sender, helo, ip)))
            figures["evaluate"].append(run_async(args.calls, lambda: auth.evaluate(MESSAGE, sender, helo, ip)))
            figures["authenticate_inbound"].append(
                run_async(args.calls, lambda: authenticate_inbound(server, envelope, MESSAGE))
            )
        for name, values in figures.items():
            print(f"{name}: {min(values):.1f} us/call (median {sorted(values)[len(values) // 2]:.1f})")


async def _no_pool(f: Callable[..., Any], *args: Any) -> Any:
    raise SystemExit("evaluation went to the DNS pool: some DNS answer is not cached")


if __name__ == "__main__":
    main()
