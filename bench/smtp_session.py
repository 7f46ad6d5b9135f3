#!/usr/bin/env python3
"""SMTP session and delivery decision cost on the reactor thread, without the store and mail auth.

Feeds `--count` messages through one SMTP session over StringTransport (tests/smtpserver/
harness.py), as smtp-source does: MAIL, RCPT, DATA and a 10 KB body in two reads, no
pipelining. The account store and inbound mail authentication are replaced by fakes that
answer at once (bench/store_append.py and bench/mailauth.py measure those), so what is timed
is the session (commands, dot-data, replies), ops.delivery (recipient, plan, trace fields,
decision, delivery id), the junk decider's hand-off for an untrained filter, as on a new
server, and the accepted log line through mailsrv's text observer into a file. Prints the
thread's CPU time per message (`time.thread_time()`); single-threaded and synchronous, so
it varies less than bench/smtp.py on a loaded machine (take the best of a few runs).

    python bench/smtp_session.py [--count N] [--profile FILE]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: the checkout, not bench/, goes first on sys.path (bench/queue.py must not
# shadow the standard library's queue module).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet.defer import succeed  # noqa: E402
from twisted.logger import globalLogBeginner  # noqa: E402

import mailsrv.smtpserver.session as session_module  # noqa: E402
from mailsrv.logging import make_observer  # noqa: E402
from mailsrv.ops import junk  # noqa: E402
from mailsrv.store.interfaces import AppendResult  # noqa: E402
from tests.smtpserver.harness import Harness  # noqa: E402

AUTH_RESULTS = (
    b"Authentication-Results: mail.example.org; spf=none smtp.mailfrom=example.net;\r\n"
    b"\tdkim=none; dmarc=none header.from=example.net\r\n"
)


def message(n: int) -> bytes:
    """What smtp-source -l 10240 sends: four header fields, then numbered 80-octet lines."""
    header = (
        "From: <bench@example.net>\r\nTo: <alice@example.org>\r\n"
        "Date: Mon,  7 Dec 2026 05:58:33 +0000 (UTC)\r\n"
        f"Message-Id: <{n}.0003.0001@client.example.net>\r\n\r\n"
    ).encode()
    lines = b"".join(str(i % 10).encode() + b"X" * 78 + b"\r\n" for i in range(1, 129))
    return header + lines + b".\r\n"


class FakeStore:
    def quota_limit(self) -> None:
        return None

    def append(self, mailbox: str, data: Any, **kw: Any) -> Any:
        return succeed(AppendResult(1, 1, 1, 1))


async def no_auth(server: Any, envelope: Any, data: Any) -> tuple[Any, bytes]:
    return data, AUTH_RESULTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--profile", type=Path, help="cProfile the measured messages into this file")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-smtp-session-"))
    try:
        log_file = (directory / "log.txt").open("a", buffering=1)
        globalLogBeginner.beginLoggingTo([make_observer(log_file, "text")], redirectStandardIO=False)
        harness = Harness(directory / "data")
        # As the daemon: the junk decider, its account's filter known to be untrained.
        junk.install(harness.server).untrained = lambda account: True  # type: ignore[method-assign]
        session_module.authenticate_inbound = no_auth  # type: ignore[assignment]
        store = FakeStore()
        harness.server.stores.open = lambda account: store  # type: ignore[method-assign]
        client = harness.client("smtp", "127.0.0.1")
        client.cmd("HELO client.example.net")
        warm = 200
        bodies = [message(n) for n in range(args.count + warm)]

        def one(body: bytes) -> None:
            s = client.session
            for command in (b"MAIL FROM:<bench@example.net>\r\n", b"RCPT TO:<alice@example.org>\r\n", b"DATA\r\n"):
                s.dataReceived(command)
                client.transport.clear()
            s.dataReceived(body[:8192])
            s.dataReceived(body[8192:])
            reply = client.take()
            assert reply.startswith(b"250 "), reply

        for body in bodies[args.count :]:
            one(body)
        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        start = time.thread_time()
        for body in bodies[: args.count]:
            one(body)
        cpu = time.thread_time() - start
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        print(f"{args.count} messages: {1e6 * cpu / args.count:.1f} us CPU per message (session + delivery decision)")
        harness.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
