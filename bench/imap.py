#!/usr/bin/env python3
"""IMAP benchmark: mailsrv and Dovecot under the same load, in the same run.

Starts a throwaway mailsrv daemon (production password hashing: argon2 with passlib's
defaults) and, when installed (Debian `dovecot-imapd`), a throwaway Dovecot on loopback ports
with a plaintext passwd-file, fills each INBOX with `--messages` 10 KB messages, then drives
each server with ONE asyncio process holding `--sessions` raw-IMAP sessions. Within a round a
session pipelines what does not depend on an earlier answer:

    LIST + SELECT | FETCH 1:* (FLAGS ENVELOPE) + 5 x FETCH n BODY.PEEK[] + 2 x STORE n +/-FLAGS
    | APPEND (LITERAL+) | UID STORE uid +FLAGS.SILENT (\\Deleted) + UID EXPUNGE uid | IDLE, DONE

Two modes, each for `--seconds`, against both servers:
  kept   each session logs in once (before the measured window) and repeats rounds;
  login  every round is a new connection: greeting, LOGIN, the round, LOGOUT.

Printed per server and mode: commands per second by command and in total; the server's CPU
time per command (utime+stime from /proc/<pid>/stat of the daemon, and of Dovecot's master
and every process below it, including reaped children); the client's own CPU time beside the
wall time (when it nears 100% of one core the client, not the server, set the pace and the
figure is only a lower bound); and the ratio mailsrv/Dovecot for each mode.

The client finds a tagged reply with one bytes search per read instead of parsing every line:
the bench's messages contain no line that starts with a tag, so this is exact here.

    python bench/imap.py [--sessions 20] [--seconds 20] [--messages 1000] [--modes kept,login]
                         [--idle 1000,10000]

`--idle` also measures the daemon's memory per idle TLS connection. Run as root (Dovecot needs
its users); nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# `python bench/imap.py` puts bench/ first on sys.path, where bench/queue.py would shadow the stdlib queue
# module (Twisted imports it): replace that entry by the checkout.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from tests.daemon import RunningDaemon, free_port, write_config  # noqa: E402

BODY = (
    b"From: bench@example.org\r\nTo: alice@example.org\r\nSubject: bench message\r\n\r\n" + (b"x" * 76 + b"\r\n") * 128
)
USER, PASSWORD = "alice@example.org", "alicepass"
READ_TIMEOUT = 60.0
_EXISTS = re.compile(rb"\* (\d+) EXISTS")
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class IMAPError(Exception):
    pass


class Connection:
    """One raw IMAP connection. `send` pipelines commands; `reply` waits for one tagged reply
    and returns everything the server sent since the previous reply, that line included."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.next_tag = 0

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        conn = cls(reader, writer)
        await conn._until(lambda: conn._line_end(0))  # the greeting
        conn._consume(conn._line_end(0))
        return conn

    def send(self, command: bytes) -> bytes:
        self.next_tag += 1
        tag = b"t%d" % self.next_tag
        self.writer.write(tag + b" " + command + b"\r\n")
        return tag

    def _line_end(self, start: int) -> int:
        i = self.buffer.find(b"\r\n", start)
        return -1 if i < 0 else i + 2

    def _consume(self, end: int) -> bytes:
        out = bytes(self.buffer[:end])
        del self.buffer[:end]
        return out

    async def _until(self, found: Any) -> None:
        while found() < 0:
            chunk = await asyncio.wait_for(self.reader.read(1 << 18), READ_TIMEOUT)
            if not chunk:
                raise IMAPError("connection closed: " + bytes(self.buffer[-200:]).decode("ascii", "replace"))
            self.buffer += chunk

    async def reply(self, tag: bytes) -> bytes:
        needle = b"\r\n" + tag + b" "

        def find() -> int:
            if self.buffer.startswith(tag + b" "):
                return self._line_end(0)
            i = self.buffer.find(needle)
            return -1 if i < 0 else self._line_end(i + 2)

        await self._until(find)
        out = self._consume(find())
        status = out[out.rfind(tag + b" ") + len(tag) + 1 :][:2]
        if status != b"OK":
            raise IMAPError(out[-300:].decode("ascii", "replace"))
        return out

    async def continuation(self) -> None:
        def find() -> int:
            if self.buffer.startswith(b"+"):
                return self._line_end(0)
            i = self.buffer.find(b"\r\n+")
            return -1 if i < 0 else self._line_end(i + 2)

        await self._until(find)
        self._consume(find())

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


@dataclass
class Tally:
    ops: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    errors: list[str] = field(default_factory=list)


async def one_round(conn: Connection, tally: Tally, count: int) -> int:
    """The command mix; returns the message count the SELECT saw."""
    ops = tally.ops
    tags = [conn.send(b'LIST "" "*"'), conn.send(b"SELECT INBOX")]
    await conn.reply(tags[0])
    selected = await conn.reply(tags[1])
    ops["LIST"] += 1
    ops["SELECT"] += 1
    m = _EXISTS.search(selected)
    count = int(m.group(1)) if m else count
    if count:
        tags = [conn.send(b"FETCH 1:* (FLAGS ENVELOPE)")]
        tags += [conn.send(b"FETCH %d (BODY.PEEK[])" % ((i * 97) % count + 1)) for i in range(5)]
        tags += [conn.send(b"STORE %d +FLAGS (\\Flagged)" % count), conn.send(b"STORE %d -FLAGS (\\Flagged)" % count)]
        for tag in tags:
            await conn.reply(tag)
        ops["FETCH-ENVELOPES"] += 1
        ops["FETCH-BODY"] += 5
        ops["STORE"] += 2
    appended = await conn.reply(conn.send(b"APPEND INBOX {%d+}\r\n" % len(BODY) + BODY))
    ops["APPEND"] += 1
    m = _APPENDUID.search(appended)
    if m:
        uid = m.group(1)
        tags = [conn.send(b"UID STORE " + uid + b" +FLAGS.SILENT (\\Deleted)"), conn.send(b"UID EXPUNGE " + uid)]
        for tag in tags:
            await conn.reply(tag)
        ops["STORE"] += 1
        ops["EXPUNGE"] += 1
    tag = conn.send(b"IDLE")
    await conn.continuation()
    conn.writer.write(b"DONE\r\n")
    await conn.reply(tag)
    ops["IDLE"] += 1
    tally.rounds += 1
    return count


async def login(conn: Connection, tally: Tally) -> None:
    await conn.reply(conn.send(f'LOGIN {USER} "{PASSWORD}"'.encode()))
    tally.ops["LOGIN"] += 1


async def logged_in(port: int) -> Connection:
    conn = await Connection.open(port)
    await conn.reply(conn.send(f'LOGIN {USER} "{PASSWORD}"'.encode()))
    return conn


async def session_kept(conn: Connection, deadline: float, tally: Tally) -> None:
    count = 0
    while time.monotonic() < deadline:
        count = await one_round(conn, tally, count)


async def session_login(port: int, deadline: float, tally: Tally) -> None:
    count = 0
    while time.monotonic() < deadline:
        conn = await Connection.open(port)
        try:
            await login(conn, tally)
            count = await one_round(conn, tally, count)
            await conn.reply(conn.send(b"LOGOUT"))
            tally.ops["LOGOUT"] += 1
        finally:
            await conn.close()


@dataclass
class Window:
    """Wall time, the server's CPU time and the client's, from `open()` to `close()`."""

    pid: int
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def open(self) -> None:
        self.wall, self.server_cpu, self.client_cpu = time.monotonic(), tree_cpu(self.pid), time.process_time()

    def close(self) -> None:
        self.wall = time.monotonic() - self.wall
        self.server_cpu = tree_cpu(self.pid) - self.server_cpu
        self.client_cpu = time.process_time() - self.client_cpu


async def drive(port: int, pid: int, mode: str, sessions: int, seconds: float) -> tuple[Tally, Window]:
    """Runs the mode; in `kept` every session logs in before the window opens (and logs out
    after it closes), so the figures are those of sessions that stay logged in."""
    tally = Tally()
    window = Window(pid)

    async def guarded(work: Any) -> None:
        try:
            await work
        except (TimeoutError, IMAPError, OSError) as e:
            tally.errors.append(f"{type(e).__name__}: {e}")

    if mode == "kept":
        conns: list[Connection] = []

        async def connect() -> None:
            conns.append(await logged_in(port))

        await asyncio.gather(*(guarded(connect()) for _ in range(sessions)))
        window.open()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(guarded(session_kept(c, deadline, tally)) for c in conns))
        window.close()
        for c in conns:
            await guarded(c.reply(c.send(b"LOGOUT")))
            await c.close()
    else:
        window.open()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(guarded(session_login(port, deadline, tally)) for _ in range(sessions)))
        window.close()
    return tally, window


# --- CPU time from /proc -------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[1] is ppid; utime, stime, cutime, cstime are stat fields 14-17 (fields[11:15] here).
    ticks = sum(int(x) for x in fields[11:15])
    return int(fields[1]), ticks / CLOCK_TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every live process below it, each with its reaped children
    (a reaped child's time is in its parent's cutime/cstime, a live one's is not: no double
    counting)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s is not None:
                stats[int(entry)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total


@dataclass
class Result:
    server: str
    mode: str
    elapsed: float
    tally: Tally
    server_cpu: float
    client_cpu: float

    @property
    def commands(self) -> int:
        return sum(self.tally.ops.values())

    @property
    def rate(self) -> float:
        return self.commands / self.elapsed


def measure(server: str, pid: int, port: int, mode: str, sessions: int, seconds: float) -> Result:
    tally, window = asyncio.run(drive(port, pid, mode, sessions, seconds))
    elapsed, server_cpu, client_cpu = window.wall, window.server_cpu, window.client_cpu
    r = Result(server, mode, elapsed, tally, server_cpu, client_cpu)
    print(f"\n{server}, {mode}: {sessions} sessions, {elapsed:.1f} s wall, {tally.rounds} rounds")
    for op, count in sorted(tally.ops.items()):
        print(f"  {op:<16} {count / elapsed:9.1f} /s")
    print(f"  {'TOTAL':<16} {r.rate:9.1f} commands/s")
    per_command = server_cpu / max(1, r.commands) * 1e6
    print(f"  server CPU {server_cpu:.2f} s = {server_cpu / elapsed:.0%} of one core, {per_command:.0f} us per command")
    share = client_cpu / elapsed
    print(f"  client CPU {client_cpu:.2f} s of {elapsed:.2f} s wall = {share:.0%} of one core", end="")
    print("  << client near saturation: the figure above is a lower bound" if share > 0.85 else "")
    for error in tally.errors[:5]:
        print(f"  ERROR {error}")
    if len(tally.errors) > 5:
        print(f"  ... {len(tally.errors) - 5} more errors")
    return r


# --- filling and servers ---------------------------------------------------------------------


async def _fill(port: int, count: int) -> None:
    conn = await Connection.open(port)
    try:
        await conn.reply(conn.send(f'LOGIN {USER} "{PASSWORD}"'.encode()))
        for start in range(0, count, 50):
            tags = [conn.send(b"APPEND INBOX {%d+}\r\n" % len(BODY) + BODY) for _ in range(min(50, count - start))]
            for tag in tags:
                await conn.reply(tag)
        await conn.reply(conn.send(b"LOGOUT"))
    finally:
        await conn.close()


def fill(port: int, count: int) -> None:
    asyncio.run(_fill(port, count))


def start_mailsrv(directory: Path) -> RunningDaemon:
    """The test daemon's config, but with production argon2 costs, as a real install has."""
    from mailsrv.auth.credentials import CredentialStore

    daemon = write_config(
        directory,
        extra_static="[imap]\nlogin_disabled_without_tls = false\n[limits]\nmax_connections_per_ip = 20000\n",
    )
    credentials = CredentialStore(directory / "data")  # default PasswordHasher: passlib's argon2 costs
    try:
        for name, (_, password) in daemon.accounts.items():
            credentials.set_password_blocking(name, password)
    finally:
        credentials.close()
    daemon.start()
    return daemon


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


# Unchanged from the earlier bench except mail_max_userip_connections: Dovecot's default of 10
# sessions per user and address would refuse most of the bench's sessions.
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
protocol imap {{
  mail_max_userip_connections = 10000
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
    (directory / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf = directory / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(dir=directory, port=port))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            asyncio.run(_greeting(port))
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    print("dovecot did not start:", (directory / "dovecot.log").read_text(errors="replace")[-2000:])
    return None


async def _greeting(port: int) -> None:
    conn = await Connection.open(port)
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20, help="concurrent IMAP sessions of the one client process")
    parser.add_argument("--seconds", type=float, default=20, help="per server and mode")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--modes", default="kept,login")
    parser.add_argument("--idle", default="", help="idle TLS connection counts for the memory figure, e.g. 1000,10000")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= {"kept", "login"}:
        parser.error("--modes takes kept and/or login")
    work = Path(tempfile.mkdtemp(prefix="mailsrv-bench-imap-"))
    os.chmod(work, 0o755)  # Dovecot's unprivileged processes must reach their files
    daemon = start_mailsrv(work / "mailsrv")
    dovecot = None
    try:
        assert daemon.process is not None
        port = daemon.ports["imap"]
        fill(port, args.messages)
        ours = {m: measure("mailsrv", daemon.process.pid, port, m, args.sessions, args.seconds) for m in modes}
        dovecot = start_dovecot(work / "dovecot")
        if dovecot is not None:
            fill(dovecot[1], args.messages)
            theirs = {m: measure("dovecot", dovecot[0].pid, dovecot[1], m, args.sessions, args.seconds) for m in modes}
            print()
            for m in modes:
                a, b = ours[m], theirs[m]
                cpu_a = a.server_cpu / max(1, a.commands) * 1e6
                cpu_b = b.server_cpu / max(1, b.commands) * 1e6
                print(
                    f"ratio mailsrv/dovecot, {m}: {a.rate / b.rate:.2f} ({a.rate:.1f} / {b.rate:.1f} commands/s;"
                    f" server CPU per command {cpu_a:.0f} / {cpu_b:.0f} us)"
                )
        if args.idle:
            print("\nmailsrv memory with idle TLS connections (port imaps):")
            counts = [int(x) for x in args.idle.split(",")]
            idle_memory(daemon.process.pid, daemon.ports["imaps"], daemon.cert_path, counts)
    finally:
        if dovecot is not None:
            dovecot[0].terminate()
            dovecot[0].wait(10)
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
