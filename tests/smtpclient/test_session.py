"""The SMTP client against Postfix's smtp-sink (a real, well-behaved peer) and against
tests/smtpclient/fakeserver.py (garbage, silence, drops, mixed replies, STARTTLS)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.smtpclient import DeliveryResult, Envelope, SessionOptions, Timeouts, normalise_data, send_message
from mailsrv.tlsutil import generate_self_signed
from tests.ports import free_port
from tests.smtpclient.fakeserver import FakeSMTPServer
from tests.tools import needs_program, require_program

R: Any = reactor


def _as_user() -> list[str]:
    # smtp-sink must be told whom to become when started as root, and refuses -u otherwise.
    return ["-u", "nobody"] if os.geteuid() == 0 else []


MESSAGE = b"From: a@a.example\nTo: b@b.example\nSubject: t\n\n.leading dot\nbody\n"
FAST = Timeouts(connect=2, greeting=2, command=2, data_start=2, data_end=2, tls_handshake=2)


def test_normalise_data() -> None:
    assert normalise_data(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"
    assert normalise_data(b"") == b".\r\n"
    assert normalise_data(b"x\r\n") == b"x\r\n.\r\n"
    # CRLF throughout (the fast path: what the queue stores).
    assert normalise_data(b".a\r\n.\r\n..b\r\nc") == b"..a\r\n..\r\n...b\r\nc\r\n.\r\n"


def _line_by_line(message: bytes) -> bytes:
    """normalise_data as RFC 5321 §4.5.2 says it, one line at a time (the reference)."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"a", b" "]), max_size=20))
def test_normalise_data_matches_the_line_by_line_rule(parts: list[bytes]) -> None:
    message = b"".join(parts)
    assert normalise_data(message) == _line_by_line(message)


def _run(coro: Coroutine[Any, Any, None]) -> defer.Deferred[None]:
    return defer.ensureDeferred(coro)


def send(port: int, rcpts: tuple[str, ...], message: bytes = MESSAGE, **kw: Any) -> defer.Deferred[DeliveryResult]:
    options = SessionOptions(helo_name="client.example", timeouts=kw.pop("timeouts", FAST), **kw)
    return defer.ensureDeferred(
        send_message(R, "127.0.0.1", port, Envelope(kw.pop("mail_from", "a@a.example"), rcpts), message, options)
    )


@needs_program("smtp-sink", package="postfix")
class AgainstSmtpSink(TestCase):
    def start_sink(self, *flags: str) -> int:
        self.dump = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dump, True)
        os.chmod(self.dump, 0o777)  # smtp-sink drops privileges to nobody before writing
        port = free_port()
        proc = subprocess.Popen(
            [
                require_program("smtp-sink", package="postfix"),
                *_as_user(),
                "-d",
                f"{self.dump}/%M.",
                *flags,
                f"127.0.0.1:{port}",
                "10",
            ],
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        return port

    def dumped(self) -> list[bytes]:
        return [p.read_bytes() for p in self.dump.iterdir()]

    def test_pipelined_delivery_to_three(self) -> defer.Deferred[None]:
        port = self.start_sink()

        async def go() -> None:
            r = await send(port, ("x@b.example", "y@b.example", "z@b.example"))
            assert r.failure is None, r.failure
            assert r.delivered == ("x@b.example", "y@b.example", "z@b.example")
            assert "PIPELINING" in r.extensions
            [dump] = self.dumped()
            assert b"\n.leading dot\n" in dump.replace(b"\r\n", b"\n")
            assert dump.count(b"X-Rcpt-Args:") == 3

        return _run(go())

    def test_without_pipelining_and_helo_fallback(self) -> defer.Deferred[None]:
        port = self.start_sink("-p", "-e")

        async def go() -> None:
            r = await send(port, ("x@b.example",))
            assert r.failure is None and r.delivered == ("x@b.example",) and r.extensions == frozenset()
            assert b"X-Client-Proto: SMTP" in self.dumped()[0]

        return _run(go())

    def test_rcpt_soft_and_hard_refusals(self) -> defer.Deferred[None]:
        port = self.start_sink("-r", "RCPT")

        async def go() -> None:
            r = await send(port, ("x@b.example", "y@b.example"))
            assert [o.temporary for o in r.recipients] == [True, True] and r.delivered == ()
            assert self.dumped() in ([], [b""])  # at most the empty DATA that RFC 2920 §3.1 requires

        return _run(go())

    def test_disconnect_after_data(self) -> defer.Deferred[None]:
        port = self.start_sink("-q", "DATA")

        async def go() -> None:
            r = await send(port, ("x@b.example",))
            assert r.failure is not None and r.failure.kind == "connection" and not r.failure.permanent
            assert r.recipients[0].temporary

        return _run(go())

    def test_8bit_uses_body_8bitmime(self) -> defer.Deferred[None]:
        port = self.start_sink()

        async def go() -> None:
            r = await send(port, ("x@b.example",), MESSAGE + "caf\u00e9\n".encode())
            assert r.delivered == ("x@b.example",)
            assert b"BODY=8BITMIME" in self.dumped()[0]

        return _run(go())

    def test_8bit_without_8bitmime_is_permanent(self) -> defer.Deferred[None]:
        port = self.start_sink("-8")

        async def go() -> None:
            r = await send(port, ("x@b.example",), MESSAGE + "caf\u00e9\n".encode())
            assert r.failure is not None and r.failure.permanent and r.recipients[0].permanent

        return _run(go())


class AgainstFakeServer(TestCase):
    def server(self, *args: Any, **kw: Any) -> FakeSMTPServer:
        s = FakeSMTPServer(*args, **kw)
        self.addCleanup(s.close)
        return s

    def test_mixed_rcpt_replies(self) -> defer.Deferred[None]:
        def rcpt(r: str) -> bytes:
            return {"t@b.example": b"450 4.2.1 busy", "p@b.example": b"550 5.1.1 no such user"}.get(r, b"250 2.1.5 ok")

        s = self.server(rcpt_reply=rcpt)

        async def go() -> None:
            r = await send(s.port, ("ok@b.example", "t@b.example", "p@b.example"))
            assert [(o.address, o.reply.code) for o in r.recipients] == [
                ("ok@b.example", 250),
                ("t@b.example", 450),
                ("p@b.example", 550),
            ]
            assert r.recipients[2].reply.enhanced == "5.1.1"
            assert s.received[0][1] == ["ok@b.example"]
            assert s.received[0][2].startswith(b"From: a@a.example\r\n")

        return _run(go())

    def test_all_rcpts_refused_pipelined(self) -> defer.Deferred[None]:
        s = self.server(rcpt_reply=lambda r: b"550 5.1.1 nobody")

        async def go() -> None:
            r = await send(s.port, ("a@b.example", "b@b.example"))
            assert all(o.permanent and o.reply.code == 550 for o in r.recipients)
            assert s.received == []

        return _run(go())

    def test_data_refused_and_tempfailed(self) -> defer.Deferred[None]:
        s1, s2 = self.server("reject-data"), self.server("tempfail-data")

        async def go() -> None:
            r = await send(s1.port, ("a@b.example",))
            assert r.recipients[0].permanent and r.recipients[0].reply.code == 554
            r = await send(s2.port, ("a@b.example",))
            assert r.recipients[0].temporary

        return _run(go())

    def test_hostile_peers_are_temporary_failures(self) -> defer.Deferred[None]:
        big = MESSAGE + b"x" * 5000 + b"\n"
        cases = [
            ("garbage-greeting", "protocol"),
            ("garbage-after-mail", "protocol"),
            ("drop-mid-data", "connection"),
            ("silent", "timeout"),
        ]
        servers = [(self.server(b), kind) for b, kind in cases]

        async def go() -> None:
            fast = Timeouts(connect=1, greeting=0.5, command=0.5, data_start=0.5, data_end=0.5)
            for s, kind in servers:
                r = await send(s.port, ("a@b.example", "c@b.example"), big, timeouts=fast)
                assert r.failure is not None and r.failure.kind == kind, (s.behaviour, r.failure)
                assert not r.failure.permanent
                assert all(o.temporary for o in r.recipients), r.recipients
                assert s.received == []

        return _run(go())

    def test_refused_service_and_no_ehlo(self) -> defer.Deferred[None]:
        s1, s2 = self.server("refuse-service"), self.server("no-ehlo")

        async def go() -> None:
            r = await send(s1.port, ("a@b.example",))
            assert r.failure is not None and r.failure.permanent and r.recipients[0].reply.code == 554
            r = await send(s2.port, ("a@b.example",))
            assert r.delivered == ("a@b.example",) and "HELO client.example" in s2.commands

        return _run(go())

    def test_auth_plain(self) -> defer.Deferred[None]:
        s = self.server(extensions=("AUTH PLAIN LOGIN",))

        async def go() -> None:
            # Without TLS we refuse to send a password unless explicitly allowed.
            r = await send(s.port, ("x@b.example",), username="u", password="secret")
            assert r.failure is not None and r.failure.kind == "auth" and not r.authenticated
            opts = {"allow_plaintext_auth_without_tls": True}
            r = await send(s.port, ("x@b.example",), username="u", password="secret", **opts)
            assert r.failure is None and r.authenticated and r.delivered == ("x@b.example",)
            r = await send(s.port, ("x@b.example",), username="u", password="wrong", **opts)
            assert r.failure is not None and r.failure.permanent and r.recipients[0].reply.code == 535

        return _run(go())

    def test_connection_refused(self) -> defer.Deferred[None]:
        port = free_port()

        async def go() -> None:
            r = await send(port, ("a@b.example",))
            assert r.failure is not None and r.failure.kind == "connection" and r.recipients[0].temporary

        return _run(go())

    def test_size_limit_checked_before_sending(self) -> defer.Deferred[None]:
        s = self.server(extensions=("SIZE 20",))

        async def go() -> None:
            r = await send(s.port, ("a@b.example",))
            assert r.failure is not None and r.failure.permanent and r.recipients[0].permanent
            assert not any(c.startswith("MAIL") for c in s.commands)

        return _run(go())

    def test_smtputf8_needed(self) -> defer.Deferred[None]:
        s1 = self.server(extensions=("SMTPUTF8", "8BITMIME"))
        s2 = self.server(extensions=())

        async def go() -> None:
            r = await send(s1.port, ("j\u00f6rg@b.example",))
            assert r.delivered == ("j\u00f6rg@b.example",)
            assert any(c.endswith(" SMTPUTF8") for c in s1.commands if c.startswith("MAIL"))
            r = await send(s2.port, ("j\u00f6rg@b.example",))
            assert r.recipients[0].permanent

        return _run(go())

    def test_starttls_self_signed(self) -> defer.Deferred[None]:
        d = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, d, True)
        generate_self_signed(["fake.example"], d / "cert.pem", d / "key.pem")
        s = self.server(tls_files=(d / "cert.pem", d / "key.pem"))
        plain = self.server()

        async def go() -> None:
            r = await send(s.port, ("a@b.example",), tls="opportunistic")
            assert r.failure is None and r.tls and r.delivered == ("a@b.example",)
            assert s.commands.count("EHLO client.example") == 2  # again after TLS, RFC 3207 §4.2
            # Verified TLS against a self-signed certificate: temporary TLS failure.
            r = await send(s.port, ("a@b.example",), tls="verify", tls_hostname="fake.example")
            assert r.failure is not None and r.failure.kind in ("tls", "connection") and r.recipients[0].temporary
            # Trusting that very certificate makes it pass.
            r = await send(s.port, ("a@b.example",), tls="verify", tls_hostname="fake.example", ca_file=d / "cert.pem")
            assert r.failure is None and r.tls, r.failure
            # Implicit TLS (RFC 8314), verified against the certificate.
            implicit = self.server("implicit-tls", tls_files=(d / "cert.pem", d / "key.pem"))
            r = await send(
                implicit.port,
                ("a@b.example",),
                tls="verify",
                implicit_tls=True,
                tls_hostname="fake.example",
                ca_file=d / "cert.pem",
            )
            assert r.failure is None and r.tls and r.delivered == ("a@b.example",), r.failure
            assert "STARTTLS" not in implicit.commands
            # TLS required but not offered.
            r = await send(plain.port, ("a@b.example",), tls="required")
            assert r.failure is not None and r.failure.kind == "tls" and r.recipients[0].temporary
            assert plain.received == []

        return _run(go())
