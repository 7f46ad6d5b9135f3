"""TLS client-certificate login (SASL EXTERNAL, IMAP PREAUTH) with clients nobody here wrote."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.certs import client_certificate as make_cert
from tests.daemon import RunningDaemon
from tests.tools import needs_program

MSG = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: by certificate\r\n\r\nhi\r\n"


def client_context(daemon: RunningDaemon, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = daemon.ssl_context()
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def register(daemon: RunningDaemon, account: str, cert: Path, *extra: str) -> str:
    r = daemon.cli("config", "tlspubkey", "add", account, str(cert), *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


@pytest.mark.parametrize("kind", ["rsa", "p256", "ed25519"])
def test_imaps_preauth_and_submission_without_auth(daemon: RunningDaemon, tmp_path: Path, kind: str) -> None:
    cert = make_cert(tmp_path, "phone", kind)
    register(daemon, "alice", cert[0], "--name", "phone")
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    assert imap.welcome.startswith(b"* PREAUTH")
    assert imap.state == "AUTH"
    typ, boxes = imap.list()
    assert typ == "OK" and any(b"INBOX" in b for b in boxes)
    imap.logout()
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=client_context(daemon, cert)) as s:
        s.ehlo()
        assert s.sendmail("alice@example.org", ["bob@example.org"], MSG) == {}


def test_no_preauth_key_uses_authenticate_external(daemon: RunningDaemon, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "laptop", "p256")
    register(daemon, "alice", cert[0], "--no-imap-preauth")
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    assert imap.welcome.startswith(b"* OK")
    assert "AUTH=EXTERNAL" in imap.capabilities
    typ, _ = imap.authenticate("EXTERNAL", lambda _: b"")
    assert typ == "OK"
    imap.logout()
    # An authorization identity of another account is refused.
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("EXTERNAL", lambda _: b"bob@example.org")


def test_starttls_then_external(daemon: RunningDaemon, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "tablet", "rsa")
    register(daemon, "alice", cert[0])
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    assert "AUTH=EXTERNAL" not in imap.capabilities
    imap.starttls(client_context(daemon, cert))
    assert "AUTH=EXTERNAL" in imap.capabilities
    assert imap.authenticate("EXTERNAL", lambda _: b"")[0] == "OK"
    imap.logout()


def test_refusals(daemon: RunningDaemon, tmp_path: Path) -> None:
    stranger = make_cert(tmp_path, "stranger", "ed25519")
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, stranger))
    assert imap.welcome.startswith(b"* OK") and "AUTH=EXTERNAL" not in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("EXTERNAL", lambda _: b"")
    imap.login("alice@example.org", "alicepass")  # an unknown certificate does not stop passwords
    imap.logout()

    cert = make_cert(tmp_path, "alices", "p256", expired=True)  # expiry is ignored by design
    fingerprint = register(daemon, "alice", cert[0], "--no-imap-preauth")
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("bob@example.org", "bobpass")  # another account's password with alice's key
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    imap.login("alice@example.org", "alicepass")  # the same account by password is fine
    imap.logout()
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"], context=client_context(daemon, cert)) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("bob@example.org", "bobpass")

    assert daemon.cli("config", "tlspubkey", "rm", fingerprint).returncode == 0
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=client_context(daemon, cert))
    assert "AUTH=EXTERNAL" not in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("EXTERNAL", lambda _: b"")


@needs_program("openssl", package="openssl")
def test_fingerprint_matches_openssl_and_duplicate_refused(daemon: RunningDaemon, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "desk", "rsa")
    fingerprint = register(daemon, "alice", cert[0])
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert[0])], capture_output=True, check=True)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.stdout, capture_output=True, check=True
    )
    digest = subprocess.run(["sha256sum"], input=der.stdout, capture_output=True, check=True).stdout.split()[0]
    import base64

    assert base64.urlsafe_b64decode(fingerprint + "=").hex() == digest.decode()
    listed = daemon.cli("config", "tlspubkey", "list", "alice").stdout
    assert fingerprint in listed
    again = daemon.cli("config", "tlspubkey", "add", "bob", str(cert[0]))
    assert again.returncode == 1 and "already registered" in again.stderr


@needs_program("openssl", package="openssl")
def test_openssl_s_client_sees_preauth(daemon: RunningDaemon, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "cli", "ed25519")
    register(daemon, "alice", cert[0])
    run = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{daemon.ports['imaps']}",
            "-cert",
            str(cert[0]),
            "-key",
            str(cert[1]),
            "-quiet",
        ],
        input=b"a LOGOUT\r\n",
        capture_output=True,
        timeout=30,
    )
    assert b"* PREAUTH" in run.stdout, run.stdout + run.stderr


@needs_program("swaks", package="swaks")
def test_swaks_submits_with_certificate(daemon: RunningDaemon, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "swaks", "p256")
    register(daemon, "alice", cert[0])
    run = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(daemon.ports["submission"]),
            "--tls",
            "--tls-cert",
            str(cert[0]),
            "--tls-key",
            str(cert[1]),
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--header",
            "Subject: swaks cert",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_gen_writes_key_certificate_and_p12(daemon: RunningDaemon, tmp_path: Path) -> None:
    r = daemon.cli("config", "tlspubkey", "gen", "myphone", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "openssl genpkey -algorithm ed25519" in r.stdout
    for suffix in ("key", "crt", "p12"):
        assert (tmp_path / f"myphone.{suffix}").exists()
    register(daemon, "alice", tmp_path / "myphone.crt")
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1",
        daemon.ports["imaps"],
        ssl_context=client_context(daemon, (tmp_path / "myphone.crt", tmp_path / "myphone.key")),
    )
    assert imap.welcome.startswith(b"* PREAUTH")
    imap.logout()


@pytest.mark.parametrize("form", ["bare-ed25519-key", "pem-with-key-and-certificate"])
@needs_program("openssl", package="openssl")
def test_sendmail_logs_in_with_a_client_key(daemon: RunningDaemon, tmp_path: Path, form: str) -> None:
    import os
    import sys

    key = ed25519.Ed25519PrivateKey.generate()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if form == "bare-ed25519-key":
        (tmp_path / "device.pem").write_bytes(key_pem)
        # Register the same public key through a certificate made here.
        (tmp_path / "k.key").write_bytes(key_pem)
        subprocess.run(
            [
                "openssl",
                "req",
                "-new",
                "-x509",
                "-key",
                str(tmp_path / "k.key"),
                "-subj",
                "/CN=x",
                "-days",
                "1",
                "-out",
                str(tmp_path / "k.crt"),
            ],
            check=True,
            capture_output=True,
        )
        register(daemon, "alice", tmp_path / "k.crt")
    else:
        cert, keyfile = make_cert(tmp_path, "combined", "p256")
        (tmp_path / "device.pem").write_bytes(keyfile.read_bytes() + cert.read_bytes())
        register(daemon, "alice", cert)
    config = tmp_path / "sendmail.toml"
    config.write_text(
        f'server = "127.0.0.1:{daemon.ports["submissions"]}"\ntls = "implicit"\nca_file = "{daemon.cert_path}"\n'
        f'from = "alice@example.org"\nclient_cert = "{tmp_path / "device.pem"}"\n'
    )
    env = dict(os.environ, MAILSRV_SENDMAIL_CONFIG=str(config), PYTHONPATH=str(Path(__file__).parents[2]))
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mailsrv.sendmail import main; sys.exit(main(sys.argv[1:]))",
            "bob@example.org",
        ],
        input=MSG.replace(b"by certificate", b"via sendmail " + form.encode()),
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login("bob@example.org", "bobpass")
    _, data = imap.select("INBOX")
    _, found = imap.search(None, "SUBJECT", f'"via sendmail {form}"')
    assert found[0].split(), (data, found)
    imap.logout()


def test_fingerprint_starting_with_a_dash_is_not_an_option(daemon: RunningDaemon, tmp_path: Path) -> None:
    """One fingerprint in 64 begins with "-" (base64url); `tlspubkey get|rm` must still take it
    as the fingerprint, not as an unknown option (argparse's exit 2)."""
    from mailsrv.tlsutil import fingerprint_text, load_pem_certificate, spki_fingerprint

    for attempt in range(2000):
        cert = make_cert(tmp_path, f"dash{attempt}", "ed25519")
        if fingerprint_text(spki_fingerprint(load_pem_certificate(cert[0].read_bytes()))).startswith("-"):
            break
    else:
        raise AssertionError("no fingerprint starting with '-' in 2000 keys")
    fingerprint = register(daemon, "alice", cert[0])
    assert fingerprint.startswith("-")
    got = daemon.cli("config", "tlspubkey", "get", fingerprint)
    assert got.returncode == 0 and fingerprint in got.stdout, got.stderr
    assert daemon.cli("config", "tlspubkey", "rm", fingerprint).returncode == 0
    gone = daemon.cli("config", "tlspubkey", "get", fingerprint)
    assert gone.returncode == 1 and gone.stderr, gone
