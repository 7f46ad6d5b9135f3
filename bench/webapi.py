#!/usr/bin/env python3
"""Webapi benchmark: `Send` calls per second against SMTP submission of the same messages, by
the same daemon in the same run.

One real daemon (tests/daemon.py) with the webapi on an HTTPS listener. Every message goes to a
remote recipient and a hold rule keeps it in the queue, so both paths end at the same point: the
message durable in the outgoing queue (compose, DKIM, fsync), no delivery attempt meanwhile.
Both sides use TLS and keep their connections: 10 workers (threads) each keep one HTTPS
connection (POST /webapi/v0/Send, the request in the form field) or one SMTP submission session
on the implicit-TLS port (AUTH once, then MAIL/RCPT/DATA per message). The SMTP message is the
one the webapi composes from the same fields (From, To, Subject, text).

Prints calls (messages) per second for each, the ratio (goal: webapi >= 1.0x SMTP), and the CPU
seconds of the client process and of the daemon per phase, so a client-bound run shows itself.

    python bench/webapi.py [--count N] [--concurrency C] [--size OCTETS] [--rounds R] [--dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import email.policy
import http.client
import json
import os
import smtplib
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)  # the checkout, not bench/ (bench/queue.py must not shadow queue)

from tests.daemon import RunningDaemon, start_daemon  # noqa: E402
from tests.ports import free_port  # noqa: E402

RECIPIENT = "someone@remote.example"


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(workers: int, count: int, make_worker: Callable[[], Callable[[int], None]]) -> float:
    """Runs `count` operations over `workers` threads (each with its own connection from
    `make_worker`); returns the seconds taken."""
    senders = [make_worker() for _ in range(workers)]
    next_index = iter(range(count))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(send: Callable[[int], None]) -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            try:
                send(i)
            except BaseException as e:  # surfaced after the run
                errors.append(e)
                return

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def webapi_worker(port: int, user: str, password: str, text: str) -> Callable[[], Callable[[int], None]]:
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}

    def make() -> Callable[[int], None]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=_tls(), timeout=60)

        def send(i: int) -> None:
            request = {"To": [{"Address": RECIPIENT}], "Subject": f"bench {i}", "Text": text}
            body = urllib.parse.urlencode({"request": json.dumps(request)})
            conn.request("POST", "/webapi/v0/Send", body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"Send: {response.status} {data[:200]!r}")

        return send

    return make


def smtp_worker(port: int, user: str, password: str, text: str) -> Callable[[], Callable[[int], None]]:
    def make() -> Callable[[int], None]:
        client = smtplib.SMTP_SSL("127.0.0.1", port, context=_tls(), timeout=60)
        client.login(user, password)

        def send(i: int) -> None:
            msg = EmailMessage(policy=email.policy.SMTP)
            msg["From"] = user
            msg["To"] = RECIPIENT
            msg["Subject"] = f"bench {i}"
            msg.set_content(text)
            client.sendmail(user, [RECIPIENT], msg.as_bytes())

        return send

    return make


def _phase(
    daemon: RunningDaemon, name: str, count: int, workers: int, make: Callable[[], Callable[[int], None]]
) -> dict[str, float]:
    assert daemon.process is not None
    server_cpu = _cpu_of(daemon.process.pid)
    client_cpu = time.process_time()
    seconds = _run(workers, count, make)
    result = {
        "rate": count / seconds,
        "seconds": seconds,
        "client_cpu": time.process_time() - client_cpu,
        "server_cpu": _cpu_of(daemon.process.pid) - server_cpu,
    }
    print(
        f"{name:7} {result['rate']:8.1f}/s  {seconds:6.2f} s  server CPU {result['server_cpu']:6.2f} s"
        f" ({1000 * result['server_cpu'] / count:.2f} ms each)  client CPU {result['client_cpu']:6.2f} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=2000, help="octets of message text")
    parser.add_argument("--rounds", type=int, default=3, help="alternating webapi/SMTP rounds")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-webapi-"))
    https = free_port()
    extra = (
        "\n[web]\nwebapi_enabled = true\n"
        f'\n[[listeners]]\nname = "https"\nprotocol = "http"\naddress = "127.0.0.1"\nport = {https}\ntls = "implicit"\n'
    )
    daemon = start_daemon(directory / "mailsrv", extra_static=extra)
    try:
        daemon.cli_ok("queue", "holdrules", "add")  # every message stays queued: no delivery attempts
        user, password = daemon.accounts["alice"]
        text = ("x" * 71 + "\n") * max(1, args.size // 72)
        webapi = webapi_worker(https, user, password, text)
        smtp = smtp_worker(daemon.ports["submissions"], user, password, text)
        print(f"{args.count} messages of ~{args.size} octets, {args.concurrency} connections, TLS on both", flush=True)
        warm = min(50, args.count)
        _run(args.concurrency, warm, webapi)
        _run(args.concurrency, warm, smtp)
        # Alternating rounds: the disk and CPU the machine gives us drift; each side sees both.
        rounds: dict[str, list[dict[str, float]]] = {"webapi": [], "smtp": []}
        for _ in range(args.rounds):
            rounds["webapi"].append(_phase(daemon, "webapi", args.count, args.concurrency, webapi))
            rounds["smtp"].append(_phase(daemon, "smtp", args.count, args.concurrency, smtp))
        w, s = (statistics.median(r["rate"] for r in rounds[k]) for k in ("webapi", "smtp"))
        wc, sc = (statistics.median(r["server_cpu"] for r in rounds[k]) for k in ("webapi", "smtp"))
        print(
            f"webapi/smtp (medians of {args.rounds} rounds): {w / s:.2f}x calls per second;"
            f" server CPU per message {wc / max(sc, 1e-9):.2f}x of SMTP's"
        )
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
