#!/usr/bin/env python3
"""Outgoing-queue benchmark: mailsrv against Postfix, submission to delivered at a sink.

The same load goes to each server in turn, in one run: `--sessions` SMTP client sessions
(Python smtplib threads, STARTTLS on both servers) submit `--count` messages of 10 KB, one
recipient each, spread evenly over 10 destination domains d0.example ... d9.example. Both
servers relay them to one Postfix `smtp-sink` on 127.0.0.1, and a message counts as
delivered when the sink has received its final "." (the sink's `-c` counters). Measured:
the submission rate (until the last 250) and the total rate (first MAIL until the sink has
counted every message), then the ratio of the totals.

- mailsrv: the real daemon (tests/daemon.py) with `[smtp] remote_port` at the sink; the 10
  domains' MX records (the daemon's loopback test DNS server) point at 127.0.0.1. Clients
  log in (AUTH PLAIN) on the submission port.
- Postfix: a throwaway instance in a temp dir (own config, queue and data directories,
  loopback smtpd port, no chroot), relaying for 127.0.0.0/8 without AUTH, with a
  transport map sending each of the 10 domains to [127.0.0.1]:sinkport (no DNS).

docs/performance.md ("Queue") lists what else differs between the two. Run as root (Postfix
and smtp-sink drop privileges themselves):

    python bench/queue.py [--count N] [--sessions S] [--no-postfix] [--dir DIR]
"""

from __future__ import annotations

import os
import sys

# `python bench/queue.py` puts bench/ first on sys.path, where this very file would shadow the
# standard library's `queue` module for everything imported later (Twisted's thread pool,
# urllib3, ...). Drop the script's directory before any other import and put the checkout
# root there instead, so that `mailsrv` and `tests` come from this checkout.
_BENCH_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _BENCH_DIR]
sys.path.insert(0, os.path.dirname(_BENCH_DIR))

import argparse  # noqa: E402
import json  # noqa: E402
import queue as _stdlib_queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import smtplib  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import postfix  # noqa: E402
from mailsrv.tlsutil import generate_self_signed  # noqa: E402
from tests.daemon import RunningDaemon, free_port, write_config  # noqa: E402

assert os.path.realpath(_stdlib_queue.__file__) != os.path.realpath(__file__), "bench/queue.py shadows stdlib queue"

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or postfix.POSTFIX
DOMAINS = [f"d{i}.example" for i in range(10)]
SENDER = "alice@example.org"  # an account of the test daemon; submission checks From:
BODY = (b"x" * 76 + b"\r\n") * 128
WARMUP = 20


def _message(i: int, rcpt: str) -> bytes:
    head = f"From: {SENDER}\r\nTo: {rcpt}\r\nSubject: bench {i}\r\nMessage-ID: <bench{i}@example.org>\r\n\r\n"
    return head.encode() + BODY


class Sink:
    """smtp-sink on 127.0.0.1:port, counting the messages it received (`-c` prints running
    counters "sess=.. quit=.. mesg=N" separated by CR)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received = 0
        self._changed = threading.Condition()
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root without -u
        # Backlog and connection limit well above both servers' parallel sessions.
        argv = [SMTP_SINK, *as_user, "-c", "-m", "512", f"127.0.0.1:{port}", "512"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        _wait_for_port(port)

    def _read(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        while chunk := self.process.stdout.read1(4096):
            pending += chunk
            *counters, pending = pending.split(b"\r")
            for match in (re.search(rb"mesg=(\d+)", c) for c in reversed(counters)):
                if match:
                    with self._changed:
                        self.received = int(match.group(1))
                        self._changed.notify_all()
                    break

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.received >= count, timeout)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass(frozen=True)
class Result:
    count: int
    submitted: float  # seconds until the last message was accepted
    delivered: float  # seconds until the sink had counted every message
    cpu: float | None = None  # CPU seconds of the server process (all threads) meanwhile
    # CPU seconds per kind of thread ("reactor", "fsync pool", ...) meanwhile.
    threads: dict[str, float] | None = None

    def line(self, name: str) -> str:
        cpu = f", {1000 * self.cpu / self.count:.2f} ms CPU/msg" if self.cpu is not None else ""
        by_thread = ""
        if self.threads:
            by_thread = "\n  CPU/msg by thread: " + ", ".join(
                f"{kind} {1000 * seconds / self.count:.2f} ms"
                for kind, seconds in sorted(self.threads.items(), key=lambda kv: -kv[1])
            )
        return (
            f"{name:8} submission {self.count / self.submitted:5.0f} msg/s ({self.submitted:.2f} s), "
            f"submission to delivered {self.count / self.delivered:5.0f} msg/s ({self.delivered:.2f} s){cpu}"
            f"{by_thread}"
        )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process, by thread id."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def thread_kinds(pid: int) -> dict[int, str]:
    """Thread id -> kind ("reactor", "mailsrv-fsync", ...), from py-spy's dump when it is
    installed (Python 3.11 does not name its threads for the kernel); {} otherwise."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return {}
    try:
        dump = subprocess.run([py_spy, "dump", "--json", "--pid", str(pid)], capture_output=True, timeout=30)
        threads = json.loads(dump.stdout)
    except (subprocess.SubprocessError, ValueError):
        return {}
    return {
        int(t["os_thread_id"]): "reactor"
        if t["thread_name"] == "MainThread"
        else re.sub(r"^PoolThread-|-\d+$", "", str(t["thread_name"]))
        for t in threads
        if t.get("os_thread_id")
    }


def submit(
    port: int, first: int, count: int, sessions: int, tls: ssl.SSLContext, login: tuple[str, str] | None
) -> None:
    """`sessions` threads, each one SMTP session (STARTTLS, optional AUTH) sending its share
    of messages `first` ... `first + count - 1`; any refused message raises."""
    errors: list[BaseException] = []

    def session(numbers: range) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.net", timeout=120) as smtp:
                smtp.starttls(context=tls)
                if login is not None:
                    smtp.login(*login)
                for i in numbers:
                    rcpt = f"user{i}@{DOMAINS[i % len(DOMAINS)]}"
                    smtp.sendmail(SENDER, [rcpt], _message(i, rcpt))
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=session, args=(range(first + s, first + count, sessions),)) for s in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def run_load(
    sink: Sink,
    port: int,
    count: int,
    sessions: int,
    tls: ssl.SSLContext,
    login: tuple[str, str] | None,
    pid: int | None = None,
) -> Result:
    # Warm-up: first connections, DNS answers and the runner's first scans are not measured.
    base = sink.received
    submit(port, 0, WARMUP, min(sessions, WARMUP), tls, login)
    if not sink.wait_for(base + WARMUP, 120):
        raise RuntimeError("warm-up messages were not delivered")
    base = sink.received
    cpu = process_cpu(pid) if pid is not None else 0.0
    threads_before = thread_cpu(pid) if pid is not None else {}
    start = time.perf_counter()
    submit(port, WARMUP, count, sessions, tls, login)
    submitted = time.perf_counter() - start
    if not sink.wait_for(base + count, 600):
        raise RuntimeError(f"only {sink.received - base} of {count} messages reached the sink")
    delivered = time.perf_counter() - start
    if pid is None:
        return Result(count, submitted, delivered)
    kinds = thread_kinds(pid)
    threads: dict[str, float] = {}
    for tid, seconds in thread_cpu(pid).items():
        kind = "reactor" if tid == pid else kinds.get(tid, "other")
        threads[kind] = threads.get(kind, 0.0) + seconds - threads_before.get(tid, 0.0)
    return Result(count, submitted, delivered, process_cpu(pid) - cpu, threads)


def bench_mailsrv(directory: Path, sink: Sink, count: int, sessions: int) -> Result:
    daemon = write_config(directory / "mailsrv")
    with daemon.config_path.open("a") as config:
        config.write(f"\n[smtp]\nremote_port = {sink.port}\n")
    daemon.start()
    try:
        assert daemon.dns is not None
        # Negative answers (no AAAA for the MX hosts, no _mta-sts TXT) carry an SOA, as a real
        # zone's do, so the daemon caches them as it would in production.
        daemon.dns.negative_ttl = 300
        for d in DOMAINS:
            daemon.dns.add(d, "MX", f"10 mx.{d}.")
            daemon.dns.add(f"mx.{d}", "A", "127.0.0.1")
        print(f"mailsrv daemon pid {_pid(daemon)}", flush=True)
        login = (SENDER, "alicepass")
        return run_load(sink, daemon.ports["submission"], count, sessions, daemon.ssl_context(), login, _pid(daemon))
    finally:
        daemon.stop()


def _pid(daemon: RunningDaemon) -> int:
    assert daemon.process is not None
    return daemon.process.pid


def _postfix_config(base: Path, port: int, sink_port: int, cert: Path, key: Path) -> Path:
    conf = postfix.write_config(
        base,
        port,
        f"""smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:{base / "etc"}/transport
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtp_tls_security_level = none
""",
    )
    # Every destination domain to the sink by IP literal: no DNS, as mailsrv's MX answers are
    # cached after the warm-up anyway.
    (conf / "transport").write_text("".join(f"{d} smtp:[127.0.0.1]:{sink_port}\n" for d in DOMAINS))
    return conf


def bench_postfix(directory: Path, sink: Sink, count: int, sessions: int) -> Result:
    base = directory / "postfix"
    port = free_port()
    cert, key = base / "cert.pem", base / "key.pem"
    base.mkdir()
    generate_self_signed(["localhost", "127.0.0.1"], cert, key)
    conf = _postfix_config(base, port, sink.port, cert, key)
    subprocess.run([POSTFIX, "-c", str(conf), "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        return run_load(sink, port, count, sessions, tls, None)
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], check=False, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10, help="parallel submission sessions")
    parser.add_argument("--no-postfix", action="store_true", help="measure mailsrv only")
    parser.add_argument("--dir", type=Path, help="where to put both servers' data (default: a temp dir)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-queue-", dir=args.dir))
    os.chmod(directory, 0o755)
    sink = Sink(free_port())
    try:
        print(
            f"{args.count} messages of {len(_message(0, 'user0@d0.example'))} octets to {len(DOMAINS)} domains, "
            f"{args.sessions} submission sessions, data in {directory}",
            flush=True,
        )
        ours = bench_mailsrv(directory, sink, args.count, args.sessions)
        print(ours.line("mailsrv"), flush=True)
        if args.no_postfix:
            return
        theirs = bench_postfix(directory, sink, args.count, args.sessions)
        print(theirs.line("postfix"), flush=True)
        print(f"ratio mailsrv/postfix (submission to delivered): {theirs.delivered / ours.delivered:.2f}")
    finally:
        sink.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
