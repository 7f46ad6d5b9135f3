"""The real daemon as a subprocess, for end-to-end tests with real clients.

    def test_login(daemon: RunningDaemon) -> None:
        imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
        imap.starttls(daemon.ssl_context())
        imap.login("alice@example.org", "alicepass")

`start_daemon(tmp_path)` writes a static config with free loopback ports for every protocol
(smtp: STARTTLS, submission: STARTTLS, submissions: implicit TLS, imap: STARTTLS, imaps:
implicit TLS, http), a self-signed certificate, the domain example.org and the accounts
alice@example.org / alicepass and bob@example.org / bobpass, then runs
`python -m twisted --log-format=text mailsrv --config ...` and waits until every port accepts
connections and the daemon logged "mailsrv started" (reactor running, signal handlers set).
`stop()` sends SIGTERM and checks the exit code is 0; `kill()` sends SIGKILL.
The `daemon` fixture in conftest.py gives a started daemon per test.

The daemon never queries the real DNS: unless `extra_static` has its own `[dns]` section,
`[dns] nameservers` points at `daemon.dns`, a `tests/dnsserver.py` server on loopback that
answers NXDOMAIN for everything until a test adds records (so remote delivery fails fast
and inbound checks answer at once). It lives as long as the `RunningDaemon` object, across
restarts.
"""

from __future__ import annotations

import imaplib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.dnsserver import DNSServer
from tests.ports import free_port

DEFAULT_ACCOUNTS = {"alice": ("alice@example.org", "alicepass"), "bob": ("bob@example.org", "bobpass")}
LISTENERS = (
    ("smtp", "smtp", "starttls"),
    ("submission", "submission", "starttls"),
    ("submissions", "submission", "implicit"),
    ("imap", "imap", "starttls"),
    ("imaps", "imap", "implicit"),
    ("http", "http", "none"),
)
REPO = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")
# Logged once the reactor runs and the signal handlers are in place (mailsrv/service.py).
READY_LINE = "mailsrv started"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class RunningDaemon:
    directory: Path
    config_path: Path
    ports: dict[str, int]
    cert_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    accounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    dns: DNSServer | None = None  # the daemon's nameserver, unless the test brought its own [dns]
    address: str = "127.0.0.1"  # where every listener binds (127.0.0.2 etc. for a second "host")
    # What runs the daemon: `python -m twisted`, or a module that registers test-only parts first
    # (tests/web/exampleapi.py registers a web interface).
    python_args: tuple[str, ...] = ("-m", "twisted")

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this daemon's self-signed certificate."""
        ctx = ssl.create_default_context(cafile=str(self.cert_path))
        ctx.check_hostname = False
        return ctx

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("MAILSRV_CONFIG", None)
        log = self.log_path.open("ab")
        log_start = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, *self.python_args, "--log-format=text", "mailsrv", "--config", str(self.config_path)],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        pending = set(self.ports.values())
        # Ports accept connections (kernel backlog) before the reactor runs; a signal sent then
        # would not stop the daemon cleanly. Ready = every port answers and the daemon said so.
        while pending or not self._ready(log_start):
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"daemon did not open its ports in {timeout}s:\n{self.log()}")
            for port in list(pending):
                try:
                    socket.create_connection((self.address, port), timeout=0.5).close()
                    pending.discard(port)
                except OSError:
                    pass
            if pending or not self._ready(log_start):
                time.sleep(0.05)

    def _ready(self, log_start: int) -> bool:
        with self.log_path.open("rb") as f:
            f.seek(log_start)
            return READY_LINE.encode() in f.read()

    def stop(self, timeout: float = 15.0) -> str:
        """SIGTERM; asserts a clean exit (code 0). Returns the log."""
        if self.process is None or self.process.poll() is not None:
            return self.log()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"daemon did not stop on SIGTERM:\n{self.log()}") from None
        assert code == 0, f"daemon exit code {code}:\n{self.log()}"
        return self.log()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs the `mailsrv` CLI against this daemon's config."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run(
            [sys.executable, "-m", "mailsrv.cli", "--config", str(self.config_path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    def cli_ok(self, *args: str) -> str:
        """The CLI's standard output; asserts it succeeded."""
        r = self.cli(*args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def cli_json(self, *args: str) -> Any:
        """The CLI's `--json` answer, parsed; asserts it succeeded."""
        return json.loads(self.cli_ok(*args, "--json"))

    def inbox(self, address: str, password: str, mailbox: str = "INBOX") -> list[bytes]:
        """Every message of `mailbox`, in order, read over IMAPS."""
        imap = imaplib.IMAP4_SSL(self.address, self.ports["imaps"], ssl_context=self.ssl_context())
        try:
            imap.login(address, password)
            _, data = imap.select(mailbox, readonly=True)
            count = int(data[0] or 0)
            if not count:
                return []
            _, fetched = imap.fetch(f"1:{count}", "(BODY.PEEK[])")
            return [part[1] for part in fetched if isinstance(part, tuple)]
        finally:
            imap.logout()


def connect_when_up(proc: subprocess.Popen[bytes], connect: Callable[[], _T], timeout: float = 30.0) -> _T:
    """Calls `connect` until it stops raising OSError (the server in `proc` is listening);
    fails with the server's output if it exits first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect()
        except OSError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.1)


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "a condition") -> None:
    """Polls `condition` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write_config(
    directory: Path,
    *,
    accounts: dict[str, tuple[str, str]] | None = None,
    domain: str = "example.org",
    extra_static: str = "",
    extra_dynamic: str = "",
    address: str = "127.0.0.1",
) -> RunningDaemon:
    """Writes config, certificate, dynamic config and passwords without starting anything."""
    from mailsrv.auth.credentials import CredentialStore
    from mailsrv.auth.passwords import PasswordHasher
    from mailsrv.tlsutil import generate_self_signed

    accounts = DEFAULT_ACCOUNTS if accounts is None else accounts
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    generate_self_signed(["localhost", address, f"mail.{domain}"], cert, key)
    # The DNS server binds port 0 and holds its ports; the listeners' numbers come from
    # tests/ports.py, below the ephemeral range, so neither can take the other's.
    dns = None if "[dns]" in extra_static else DNSServer()
    ports = {name: free_port() for name, _, _ in LISTENERS}
    lines = [
        f'hostname = "mail.{domain}"',
        'data_dir = "data"',
        "",
        "[[tls]]",
        f"cert_file = {_toml_value(str(cert))}",
        f"key_file = {_toml_value(str(key))}",
    ]
    for name, protocol, tls in LISTENERS:
        lines += [
            "",
            "[[listeners]]",
            f'name = "{name}"',
            f'protocol = "{protocol}"',
            f'address = "{address}"',
            f"port = {ports[name]}",
            f'tls = "{tls}"',
        ]
    if dns is not None:
        lines += ["", "[dns]", f"nameservers = [{_toml_value(dns.nameserver)}]", "timeout = 2"]
    config_path = directory / "mailsrv.toml"
    config_path.write_text("\n".join(lines) + "\n" + extra_static)
    dyn = [f'[domains."{domain}"]', 'localpart_catchall_separator = "+"', ""]
    for name, (account_address, _) in accounts.items():
        dyn += [
            f"[accounts.{_toml_value(name)}]",
            f'domain = "{domain}"',
            f"addresses = [{_toml_value(account_address)}]",
            "",
        ]
    data = directory / "data"
    data.mkdir(exist_ok=True)
    (data / "dynamic.toml").write_text("\n".join(dyn) + extra_dynamic)
    # Cheap argon2 settings: tests measure behaviour, not hashing cost.
    credentials = CredentialStore(data, hasher=PasswordHasher.for_tests())
    try:
        for name, (_, password) in accounts.items():
            credentials.set_password_blocking(name, password)
    finally:
        credentials.close()
    daemon = RunningDaemon(
        directory=directory,
        config_path=config_path,
        ports=ports,
        cert_path=cert,
        log_path=directory / "daemon.log",
        accounts=dict(accounts),
        dns=dns,
        address=address,
    )
    if dns is not None:
        weakref.finalize(daemon, dns.close)
    return daemon


def start_daemon(directory: Path, **options: Any) -> RunningDaemon:
    daemon = write_config(directory, **options)
    daemon.start()
    return daemon
