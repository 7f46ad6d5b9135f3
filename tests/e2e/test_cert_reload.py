"""Certificate renewal without a restart (issue 17 item 14): replace the certificate and key
files, send SIGHUP; a new handshake sees the new certificate while a connection made before
goes on. A file that does not load leaves the old certificate in use."""

from __future__ import annotations

import imaplib
import signal
import ssl
from pathlib import Path

from mailsrv.certreload import CertificateReloader
from mailsrv.config.types import TLSKeyPair
from mailsrv.tlsutil import TLSContexts, generate_self_signed
from tests.daemon import RunningDaemon, wait_until


def _no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _served_certificate(daemon: RunningDaemon) -> bytes:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=_no_verify())
    try:
        der = imap.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        assert der is not None
        return bytes(der)
    finally:
        imap.logout()


def _pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_sighup_swaps_the_certificate_and_keeps_connections(daemon: RunningDaemon, tmp_path: Path) -> None:
    assert daemon.process is not None
    key_path = daemon.cert_path.with_name("key.pem")
    old = _served_certificate(daemon)
    assert old == _pem_to_der(daemon.cert_path)
    before = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=_no_verify())
    before.login("alice@example.org", "alicepass")

    # A renewal as an ACME client does it: new files, then the signal.
    generate_self_signed(["localhost", "127.0.0.1", "mail.example.org"], tmp_path / "c.pem", tmp_path / "k.pem")
    (tmp_path / "k.pem").replace(key_path)
    (tmp_path / "c.pem").replace(daemon.cert_path)
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS certificates reloaded (SIGHUP)" in daemon.log(), 20, "the reload line")

    new = _served_certificate(daemon)
    assert new == _pem_to_der(daemon.cert_path) and new != old
    # STARTTLS takes the new one too.
    plain = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    plain.starttls(_no_verify())
    assert plain.sock.getpeercert(binary_form=True) == new  # type: ignore[attr-defined]
    plain.logout()
    # The connection made before the reload still works, with its old session.
    assert before.noop()[0] == "OK" and before.select("INBOX")[0] == "OK"
    assert before.sock.getpeercert(binary_form=True) == old  # type: ignore[attr-defined]
    before.logout()

    # A broken file: the reload is refused, the certificate in use stays.
    daemon.cert_path.write_text("not a certificate\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS certificates not reloaded (SIGHUP)" in daemon.log(), 20, "the refusal line")
    assert _served_certificate(daemon) == new
    assert "Traceback" not in daemon.log()


def test_a_changed_file_is_noticed(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(["mail.example.org"], cert, key)
    tls = TLSContexts([TLSKeyPair(cert_file=cert, key_file=key, hostnames=())])
    reloader = CertificateReloader(tls)
    first = tls.certificates[0]
    assert not reloader.check_files()  # nothing changed
    generate_self_signed(["mail.example.org"], tmp_path / "c2.pem", tmp_path / "k2.pem")
    (tmp_path / "k2.pem").replace(key)
    (tmp_path / "c2.pem").replace(cert)
    assert reloader.check_files() and tls.certificates[0] != first
    assert not reloader.check_files()
