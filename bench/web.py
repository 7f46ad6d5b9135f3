#!/usr/bin/env python3
"""Web benchmark: JSON API calls per second for a cheap authenticated call (the account page's
`Account`) against the IMAP `NOOP` rate of the same daemon in the same run, and the time to
load the account page with all its assets.

One real daemon (tests/daemon.py) with an HTTPS listener. Both rates use TLS, kept connections
and `--concurrency` clients (asyncio, one connection each): an HTTP/1.1 keep-alive POST of
`{"params": []}` with the session cookie and the CSRF header, or `a NOOP` on an IMAPS session
logged in once. Each phase runs `--seconds`; the client's and the daemon's CPU seconds are
printed per phase, so a client-bound run shows itself (the client should use well under one
core).

Page load: the page (index.html) and every asset it names (style.css, app.js), fetched one after
the other over one kept connection, cold (no validators) and warm (If-None-Match: 304s); with
Debian's chromium (Playwright), the browser's own navigation timing to the load event as well.

    python bench/web.py [--seconds S] [--concurrency C] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)  # the checkout, not bench/

from tests.daemon import RunningDaemon, start_daemon  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.web.apiclient import ApiClient  # noqa: E402

PREFIX = "/webaccount/"
METHOD = "Account"


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client_context(daemon: RunningDaemon) -> ssl.SSLContext:
    return daemon.ssl_context()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if match is None:
        raise RuntimeError(f"no Content-Length in {head!r}")
    return status, await reader.readexactly(int(match.group(1)))


async def _api_worker(daemon: RunningDaemon, port: int, request: bytes, until: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context(daemon))
    calls = 0
    try:
        while time.perf_counter() < until:
            writer.write(request)
            status, body = await _read_response(reader)
            if status != 200 or not body.startswith(b'{"result"'):
                raise RuntimeError(f"API call failed: {status} {body[:200]!r}")
            calls += 1
    finally:
        writer.close()
    return calls


async def _imap_worker(daemon: RunningDaemon, address: str, password: str, until: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.ports["imaps"], ssl=_client_context(daemon))

    async def tagged(tag: bytes) -> bytes:
        while True:
            line = await reader.readline()
            if not line:
                raise RuntimeError("IMAP connection closed")
            if line.startswith(tag + b" "):
                return line

    await reader.readline()  # greeting
    writer.write(b'l LOGIN "%s" "%s"\r\n' % (address.encode(), password.encode()))
    if not (await tagged(b"l")).startswith(b"l OK"):
        raise RuntimeError("IMAP login failed")
    noops = 0
    try:
        while time.perf_counter() < until:
            writer.write(b"n NOOP\r\n")
            if not (await tagged(b"n")).startswith(b"n OK"):
                raise RuntimeError("NOOP failed")
            noops += 1
    finally:
        writer.close()
    return noops


def _phase(name: str, daemon: RunningDaemon, run: object) -> float:
    assert daemon.process is not None
    server_cpu, client_cpu, start = _cpu_of(daemon.process.pid), time.process_time(), time.perf_counter()
    count = asyncio.run(run)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    server_cpu = _cpu_of(daemon.process.pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    rate = count / elapsed
    print(
        f"{name:>24}: {count:7d} in {elapsed:5.1f} s = {rate:8.0f}/s; "
        f"server CPU {server_cpu:5.2f} s ({server_cpu / count * 1e6:6.0f} us/op), "
        f"client CPU {client_cpu:5.2f} s ({client_cpu / elapsed:4.0%} of a core)"
    )
    return rate


async def _gather(workers: list[object]) -> int:
    return sum(await asyncio.gather(*workers))  # type: ignore[call-overload]


def _page_load(daemon: RunningDaemon, port: int) -> None:
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", port, context=_client_context(daemon), timeout=30)
    etags: dict[str, str] = {}

    def load(warm: bool) -> tuple[float, int]:
        start = time.perf_counter()
        conn.request("GET", PREFIX, headers={"If-None-Match": etags[PREFIX]} if warm else {})
        response = conn.getresponse()
        page = response.read()
        etags[PREFIX] = response.getheader("etag") or ""
        if not warm:
            assets = re.findall(rb'(?:href|src)="([^":]+)"', page)
            etags.update({PREFIX + a.decode(): "" for a in assets})
        octets = len(page)
        for path in [p for p in etags if p != PREFIX]:
            conn.request("GET", path, headers={"If-None-Match": etags[path]} if warm else {})
            response = conn.getresponse()
            octets += len(response.read())
            etags[path] = response.getheader("etag") or ""
        return time.perf_counter() - start, octets

    for warm in (False, True):
        times = []
        for _ in range(20):
            seconds, octets = load(warm)
            times.append(seconds)
        times.sort()
        print(
            f"{'page load ' + ('warm (304s)' if warm else 'cold'):>24}: {len(etags)} files, {octets} octets, "
            f"median {times[10] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
        )
    conn.close()
    _browser_load(daemon, port)


def _browser_load(daemon: RunningDaemon, port: int) -> None:
    from tests.tools import find_program

    chromium = find_program("chromium")
    if chromium is None:
        print(f"{'browser load':>24}: skipped (Debian package chromium not installed)")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        loads = []
        for _ in range(10):
            page.goto(f"https://127.0.0.1:{port}{PREFIX}", wait_until="load")
            loads.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        browser.close()
    loads.sort()
    print(f"{'browser load (chromium)':>24}: median {loads[5]:.1f} ms to the load event, max {loads[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-web-"))
    https = free_port()
    listener = (
        f'\n[[listeners]]\nname = "https"\nprotocol = "http"\naddress = "127.0.0.1"\nport = {https}\ntls = "implicit"\n'
    )
    daemon = start_daemon(directory / "daemon", extra_static=listener)
    daemon.ports["https"] = https
    try:
        address, password = daemon.accounts["alice"]
        client = ApiClient.for_daemon(daemon, PREFIX, port_name="https")
        client.login(address, password)
        assert client.call(METHOD)
        body = json.dumps({"params": []}).encode()
        request = (
            f"POST {PREFIX}api/{METHOD} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Cookie: mailsrvsession={client.cookies['mailsrvsession']}\r\nx-mailsrv-csrf: {client.csrf}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per phase, TLS and kept connections on both")
        until = time.perf_counter() + args.seconds
        api_rate = _phase(
            f"API {METHOD}",
            daemon,
            _gather([_api_worker(daemon, https, request, until) for _ in range(args.concurrency)]),
        )
        until = time.perf_counter() + args.seconds
        imap_rate = _phase(
            "IMAP NOOP",
            daemon,
            _gather([_imap_worker(daemon, address, password, until) for _ in range(args.concurrency)]),
        )
        print(f"{'ratio':>24}: API {api_rate / imap_rate:.2f}x IMAP NOOP")
        _page_load(daemon, https)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
