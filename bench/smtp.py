#!/usr/bin/env python3
"""SMTP benchmark: mailsrv against Postfix under the same `smtp-source` load.

`smtp-source` (Postfix's load generator) runs 10 parallel sessions delivering 10 KB messages
to a local account over loopback, for a fixed count, first against a real mailsrv daemon
(tests/daemon.py: every message fsynced into the account store before 250), then against
a throwaway Postfix instance in a temp dir (its own queue, loopback port, virtual delivery
to a Maildir; Postfix fsyncs its queue file before 250). Prints messages per second for
each and the ratio. Run as root (Postfix drops to the `postfix` user itself):

    python bench/smtp.py [--count N] [--sessions S] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script: the checkout, not bench/, goes first on sys.path, so mailsrv and tests import
# from it and bench/queue.py cannot shadow the standard library's queue module.
sys.path[0] = str(REPO)

from bench import postfix  # noqa: E402
from tests.daemon import free_port, start_daemon  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
POSTFIX = shutil.which("postfix") or postfix.POSTFIX


def load(port: int, count: int, sessions: int, size: int) -> float:
    """Runs smtp-source; returns messages per second. It aborts on any non-2xx reply."""
    args = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size), "-M", "client.example.net"]
    args += ["-f", "bench@example.net", "-t", "alice@example.org", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    subprocess.run(args, check=True, timeout=600)
    return count / (time.perf_counter() - start)


def bench_mailsrv(directory: Path, count: int, sessions: int, size: int) -> float:
    # The daemon's per-IP limit must admit every session.
    daemon = start_daemon(directory / "mailsrv")
    try:
        load(daemon.ports["smtp"], min(50, count), sessions, size)  # warm up
        return load(daemon.ports["smtp"], count, sessions, size)
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
        rate = load(port, count, sessions, size)
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
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-smtp-", dir=args.dir))
    os.chmod(directory, 0o755)
    try:
        print(f"{args.count} messages of {args.size} octets, {args.sessions} sessions, data in {directory}")
        ours = bench_mailsrv(directory, args.count, args.sessions, args.size)
        print(f"mailsrv: {ours:.0f} msg/s")
        theirs = bench_postfix(directory, args.count, args.sessions, args.size)
        print(f"postfix: {theirs:.0f} msg/s")
        print(f"ratio mailsrv/postfix: {ours / theirs:.2f}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
