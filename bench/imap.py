#!/usr/bin/env python3
"""IMAP benchmark: mailsrv and Dovecot under the same load, in the same run.

Starts a throwaway mailsrv daemon and (when installed: Debian `dovecot-imapd`) a throwaway
Dovecot on loopback ports, fills each INBOX with `--messages` 10 KB messages, then runs
`--clients` client processes for `--seconds` each, doing a realistic mix per round:
LOGIN, LIST, SELECT, FETCH of FLAGS+ENVELOPE of all messages, FETCH of 5 bodies, STORE of
flags, APPEND, EXPUNGE, a short IDLE, LOGOUT. Prints operations per second per command and
in total, the ratio mailsrv/Dovecot, and the daemon's memory per idle TLS connection.

    python bench/imap.py [--clients 10] [--seconds 20] [--messages 1000] [--idle 1000,10000]

Run as root (Dovecot needs its users); nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import multiprocessing
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# `python bench/imap.py` puts bench/ first on sys.path, where bench/queue.py would shadow the stdlib queue
# module (Twisted imports it): replace that entry by the checkout.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from tests.daemon import free_port, start_daemon  # noqa: E402

BODY = (
    b"From: bench@example.org\r\nTo: alice@example.org\r\nSubject: bench message\r\n\r\n" + (b"x" * 76 + b"\r\n") * 128
)


def _fill(port: int, user: str, password: str, count: int) -> None:
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, password)
    for _ in range(count):
        imap.append("INBOX", None, None, BODY)
    imap.logout()


def _client(args: tuple[int, str, str, float, Any]) -> Counter[str]:
    port, user, password, seconds, _ = args
    ops: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t = imaplib.IMAP4("127.0.0.1", port)
        t.login(user, password)
        ops["LOGIN"] += 1
        t.list()
        ops["LIST"] += 1
        _, data = t.select("INBOX")
        ops["SELECT"] += 1
        n = int(data[0])
        if n:
            t.fetch(f"1:{n}", "(FLAGS ENVELOPE)")
            ops["FETCH-ENVELOPES"] += 1
            for i in range(5):
                t.fetch(str((i * 97) % n + 1), "(BODY.PEEK[])")
                ops["FETCH-BODY"] += 1
            t.store(str(n), "+FLAGS", "(\\Flagged)")
            t.store(str(n), "-FLAGS", "(\\Flagged)")
            ops["STORE"] += 2
        t.append("INBOX", None, None, BODY)
        ops["APPEND"] += 1
        _, data = t.select("INBOX")
        n = int(data[0])
        t.store(str(n), "+FLAGS", "(\\Deleted)")
        t.expunge()
        ops["EXPUNGE"] += 1
        tag = t._new_tag().decode()
        t.send(f"{tag} IDLE\r\n".encode())
        t.readline()
        t.send(b"DONE\r\n")
        while not t.readline().startswith(tag.encode()):
            pass
        ops["IDLE"] += 1
        t.logout()
    return ops


def run_load(name: str, port: int, user: str, password: str, clients: int, seconds: float) -> float:
    with multiprocessing.Pool(clients) as pool:
        start = time.monotonic()
        results = pool.map(_client, [(port, user, password, seconds, None)] * clients)
        elapsed = time.monotonic() - start
    total: Counter[str] = Counter()
    for r in results:
        total.update(r)
    print(f"\n{name}: {clients} clients for {elapsed:.1f} s")
    for op, count in sorted(total.items()):
        print(f"  {op:<16} {count / elapsed:9.1f} /s")
    ops = sum(total.values()) / elapsed
    print(f"  {'TOTAL':<16} {ops:9.1f} ops/s")
    return ops


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _open_idle(port: int, count: int, ctx: ssl.SSLContext) -> list[Any]:
    conns = []
    sem = asyncio.Semaphore(100)

    async def one() -> None:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            await reader.readline()
            conns.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return conns


def idle_memory(pid: int, port: int, cert: Path, counts: list[int]) -> None:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    for count in counts:
        before = rss_kib(pid)

        async def scenario(count: int = count, before: int = before) -> None:
            conns = await _open_idle(port, count, ctx)
            await asyncio.sleep(1.0)
            after = rss_kib(pid)
            per = (after - before) * 1024 / max(1, len(conns))
            print(f"  {len(conns)} idle TLS connections: RSS {before} -> {after} KiB, {per / 1024:.1f} KiB each")
            for w in conns:
                w.close()
            await asyncio.sleep(1.0)

        asyncio.run(scenario())


DOVECOT_CONF = """
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def start_dovecot(directory: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    if shutil.which("dovecot") is None:
        print("dovecot not installed: no comparison (apt-get install dovecot-imapd)")
        return None
    port = free_port()
    for sub in ("run", "state", "mail", "home"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("mail", "home"):
        shutil.chown(directory / sub, "nobody", "nogroup")
    os.chmod(directory, 0o755)
    (directory / "users").write_text("alice@example.org:{PLAIN}alicepass\n")
    conf = directory / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(dir=directory, port=port))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            imaplib.IMAP4("127.0.0.1", port).logout()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    print("dovecot did not start:", (directory / "dovecot.log").read_text(errors="replace")[-2000:])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--idle", default="1000,10000", help="idle TLS connection counts for the memory figure")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailsrv-bench-imap-"))
    os.chmod(work, 0o755)  # Dovecot's unprivileged processes must reach their files
    daemon = start_daemon(
        work / "mailsrv",
        extra_static="[imap]\nlogin_disabled_without_tls = false\n[limits]\nmax_connections_per_ip = 20000\n",
    )
    dovecot = None
    try:
        port = daemon.ports["imap"]
        _fill(port, "alice@example.org", "alicepass", args.messages)
        ours = run_load("mailsrv", port, "alice@example.org", "alicepass", args.clients, args.seconds)
        dovecot = start_dovecot(work / "dovecot")
        if dovecot is not None:
            _fill(dovecot[1], "alice@example.org", "alicepass", args.messages)
            theirs = run_load("dovecot", dovecot[1], "alice@example.org", "alicepass", args.clients, args.seconds)
            print(f"\nratio mailsrv/dovecot: {ours / theirs:.2f}")
        assert daemon.process is not None
        print("\nmailsrv memory with idle TLS connections (port imaps):")
        idle_memory(daemon.process.pid, daemon.ports["imaps"], daemon.cert_path, [int(x) for x in args.idle.split(",")])
    finally:
        if dovecot is not None:
            dovecot[0].terminate()
            dovecot[0].wait(10)
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
