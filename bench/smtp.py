#!/usr/bin/env python3
"""SMTP benchmark: mailsrv against Postfix under the same `smtp-source` load.

`smtp-source` (Postfix's load generator) runs 10 parallel sessions delivering 10 KB messages
to a local account over loopback, for a fixed count, first against a real mailsrv daemon
(tests/daemon.py: every message fsynced into the account store before 250), then against
a throwaway Postfix instance in a temp dir (its own queue, loopback port, virtual delivery
to a Maildir; Postfix fsyncs its queue file before 250). Prints messages per second for
each and the ratio, and the daemon's CPU time per message: all its threads, and its reactor
(main) thread alone, whose busy fraction is its CPU time over the run's wall time. CPU per
message stays comparable when other work loads the machine; messages per second do not.
Run as root (Postfix drops to the `postfix` user itself):

    python bench/smtp.py [--count N] [--sessions S] [--rounds R] [--dir DIR] [--mailsrv-only] [--py-spy FILE]

`--py-spy FILE` records the daemon with py-spy (raw format, per thread) during the measured run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script: the checkout, not bench/, goes first on sys.path, so mailsrv and tests import
# from it and bench/queue.py cannot shadow the standard library's queue module.
sys.path[0] = str(REPO)

from bench import postfix  # noqa: E402
from tests.daemon import free_port, write_config  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
POSTFIX = shutil.which("postfix") or postfix.POSTFIX


def load(port: int, count: int, sessions: int, size: int) -> float:
    """Runs smtp-source; returns the seconds it took. It aborts on any non-2xx reply."""
    args = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size), "-M", "client.example.net"]
    args += ["-f", "bench@example.net", "-t", "alice@example.org", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    subprocess.run(args, check=True, timeout=600)
    return time.perf_counter() - start


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file (proc(5): fields 14 and 15); the
    process's file counts all its threads, /proc/PID/task/TID/stat one thread."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of the process, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            out[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def thread_groups(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name without its number ("PoolThread-mailsrv-fsync"), from py-spy."""
    dump = subprocess.run(["py-spy", "dump", "--json", "--nonblocking", "--pid", str(pid)], capture_output=True)
    if dump.returncode != 0:
        return {}
    return {t["os_thread_id"]: re.sub(r"-\d+$", "", t.get("thread_name") or "?") for t in json.loads(dump.stdout)}


@dataclass(frozen=True)
class Measured:
    count: int
    seconds: float
    cpu: float  # the daemon, all threads
    reactor_cpu: float  # its main thread, where the reactor runs
    # (user, system) CPU seconds per thread group (--by-thread)
    by_group: dict[str, tuple[float, float]] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"mailsrv: {self.count / self.seconds:.0f} msg/s, {1000 * self.cpu / self.count:.2f} ms CPU/msg"
            f" (reactor {1000 * self.reactor_cpu / self.count:.2f} ms, busy {self.reactor_cpu / self.seconds:.0%};"
            f" other threads {1000 * (self.cpu - self.reactor_cpu) / self.count:.2f} ms)"
        ) + "".join(
            f"\n  {name}: {1000 * (user + system) / self.count:.2f} ms/msg (system {1000 * system / self.count:.2f})"
            for name, (user, system) in sorted(self.by_group.items(), key=lambda item: -sum(item[1]))
        )


def bench_mailsrv(
    directory: Path,
    count: int,
    sessions: int,
    size: int,
    py_spy: Path | None = None,
    cprofile: Path | None = None,
    by_thread: bool = False,
) -> Measured:
    # The daemon's per-IP limit must admit every session.
    daemon = write_config(directory / "mailsrv")
    if cprofile is not None:
        # cProfile sees the main thread only: the reactor's.
        daemon.python_args = ("-m", "cProfile", "-o", str(cprofile), "-m", "twisted")
    daemon.start()
    assert daemon.process is not None
    pid = daemon.process.pid
    process, reactor = Path(f"/proc/{pid}/stat"), Path(f"/proc/{pid}/task/{pid}/stat")
    try:
        load(daemon.ports["smtp"], min(50, count), sessions, size)  # warm up
        spy = None
        if py_spy is not None:
            # --gil: only the thread holding the GIL is sampled, so samples show where Python CPU goes.
            argv = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--threads", "--gil"]
            spy = subprocess.Popen([*argv, "--nonblocking", "-o", str(py_spy)], stdout=subprocess.DEVNULL)
            time.sleep(1)  # py-spy attaches
        groups = thread_groups(pid) if by_thread else {}
        threads = thread_cpu(pid)
        cpu, reactor_cpu = cpu_seconds(process), cpu_seconds(reactor)
        seconds = load(daemon.ports["smtp"], count, sessions, size)
        measured = Measured(count, seconds, cpu_seconds(process) - cpu, cpu_seconds(reactor) - reactor_cpu)
        if by_thread:
            for tid, (user, system) in thread_cpu(pid).items():
                name = groups.get(tid, "threads started during the run")
                user0, system0 = threads.get(tid, (0.0, 0.0))
                total_user, total_system = measured.by_group.get(name, (0.0, 0.0))
                measured.by_group[name] = (total_user + user - user0, total_system + system - system0)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        return measured
    finally:
        daemon.stop()


def _postfix_config(base: Path, port: int) -> Path:
    mail = base / "maildirs"
    mail.mkdir(parents=True)
    pf = pwd.getpwnam("postfix")
    os.chown(mail, pf.pw_uid, pf.pw_gid)
    conf = postfix.write_config(
        base,
        port,
        f"""virtual_mailbox_domains = example.org
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{base / "etc"}/vmailbox
virtual_uid_maps = static:{pf.pw_uid}
virtual_gid_maps = static:{pf.pw_gid}
""",
    )
    (conf / "vmailbox").write_text("alice@example.org alice/\n")  # trailing slash: Maildir
    return conf


def bench_postfix(directory: Path, count: int, sessions: int, size: int) -> float:
    base = directory / "postfix"
    port = free_port()
    conf = _postfix_config(base, port)
    # Logging to a file would need the postlogd service; the log goes nowhere here.
    subprocess.run([POSTFIX, "-c", str(conf), "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        load(port, min(50, count), sessions, size)
        rate = count / load(port, count, sessions, size)
        # Postfix answers 250 once queued; wait until the Maildir holds everything so that
        # delivery work does not overlap the next run.
        new = base / "maildirs" / "alice" / "new"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(new.glob("*"))) < count + min(50, count):
            time.sleep(0.2)
        return rate
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], check=False, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", type=int, default=10240, help="message body octets")
    parser.add_argument("--dir", type=Path, help="where to put both servers' data (default: a temp dir)")
    parser.add_argument("--mailsrv-only", action="store_true", help="skip Postfix (CPU figures only)")
    parser.add_argument("--py-spy", type=Path, help="record the daemon with py-spy into this raw file")
    parser.add_argument("--by-thread", action="store_true", help="CPU per thread group (names from py-spy dump)")
    parser.add_argument("--cprofile", type=Path, help="run the daemon under cProfile (its reactor thread), stats here")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate mailsrv and Postfix this many times and print the median ratio (this VM's disk and CPU"
        " move both servers' rates by up to 2x within minutes: only same-round ratios compare)",
    )
    args = parser.parse_args()
    ratios: list[float] = []
    for round_number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"--- round {round_number} of {args.rounds}")
        ratio = one_round(args)
        if ratio is not None:
            ratios.append(ratio)
    if len(ratios) > 1:
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratios mailsrv/postfix: {listed}; median {statistics.median(ratios):.2f}")


def one_round(args: argparse.Namespace) -> float | None:
    """One measurement of mailsrv (and of Postfix unless --mailsrv-only); the ratio, if both ran."""
    directory = Path(tempfile.mkdtemp(prefix="bench-smtp-", dir=args.dir))
    os.chmod(directory, 0o755)
    try:
        print(f"{args.count} messages of {args.size} octets, {args.sessions} sessions, data in {directory}")
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        measured = bench_mailsrv(
            directory, args.count, args.sessions, args.size, args.py_spy, args.cprofile, args.by_thread
        )
        print(measured.line())
        if args.mailsrv_only:
            return None
        ours = measured.count / measured.seconds
        theirs = bench_postfix(directory, args.count, args.sessions, args.size)
        print(f"postfix: {theirs:.0f} msg/s")
        print(f"ratio mailsrv/postfix: {ours / theirs:.2f}")
        return ours / theirs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
