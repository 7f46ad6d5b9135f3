"""`mailsrv sendmail`: a sendmail-compatible submit command. Reads a message from stdin
and submits it over SMTP submission (with AUTH) to the configured server, so programs that
call /usr/sbin/sendmail send through mailsrv's queue, DKIM signing included.

Usage (the flags programs use; others starting with -o or -B are accepted and ignored):

    mailsrv sendmail [-t] [-i|-oi] [-f sender] [-F name] [recipient ...]

A message without From:, Date: or Message-ID: gets them here (From: is the envelope sender,
with -F's name), as /usr/sbin/sendmail does: cron and scripts often write only a Subject.

Where and how to submit comes from a TOML file, `$MAILSRV_SENDMAIL_CONFIG` or
`/etc/mailsrv/sendmail.toml`:

    server = "127.0.0.1:465"     # ip:port of a submission listener
    tls = "implicit"             # "implicit" (port 465), "starttls" or "none" (loopback only)
    ca_file = "/etc/mailsrv/tls/fullchain.pem"   # optional: verify the server against it
    username = "alice@example.org"
    password_file = "/etc/mailsrv/sendmail.pass" # first line is the password
    from = "alice@example.org"   # default envelope sender
    client_cert = "/etc/mailsrv/device.pem"  # optional: TLS client certificate login (no password
                                 # needed): a PEM with private key and certificate, or a bare
                                 # ed25519 private key (a minimal certificate is made on the fly)

Exit codes follow sendmail (sysexits.h): 0 accepted for every recipient, 64 usage,
65 bad message, 69 permanently refused, 75 temporary failure (try again), 78 configuration.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from mailsrv.config.hostport import parse_host_port
from mailsrv.smtpclient import DeliveryResult, Envelope, SessionOptions, send_message

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 69, 75, 78
DEFAULT_CONFIG = Path("/etc/mailsrv/sendmail.toml")


class SendmailError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


USAGE = """usage: mailsrv sendmail [-t] [-i|-oi] [-f sender] [-F name] [recipient ...] < message

Submits the message on standard input to the mail server named in the configuration
($MAILSRV_SENDMAIL_CONFIG, default /etc/mailsrv/sendmail.toml): a drop-in for /usr/sbin/sendmail.

  -t          also send to the To:, Cc: and Bcc: addresses of the message (Bcc: is removed)
  -i, -oi     a line with a single "." does not end the message
  -f sender   envelope sender (also -fsender, -r sender); default: the configuration's `from`
  -F name     the sender's name, for the From: field added when the message has none
  --help      this text

Accepted and ignored: -o... (-odi, -oem, -odb, ...), -B..., -bm, -em, -v, -U.
A message without From:, Date: or Message-ID: gets them. Exit status (sysexits.h): 0 sent,
64 usage, 65 bad message, 69 refused, 75 temporary failure, 78 configuration error.
"""


@dataclass(frozen=True)
class Invocation:
    recipients: tuple[str, ...]
    from_headers: bool = False  # -t
    ignore_dots: bool = False  # -i / -oi
    sender: str | None = None  # -f
    full_name: str | None = None  # -F
    help: bool = False  # --help


def parse_args(argv: Sequence[str]) -> Invocation:
    recipients: list[str] = []
    t = i = False
    sender: str | None = None
    full_name: str | None = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--":
            recipients.extend(args)
            break
        if a in ("--help", "-h"):
            return Invocation((), help=True)
        if a in ("-t",):
            t = True
        elif a in ("-i", "-oi"):
            i = True
        elif a.startswith("-f") or a.startswith("-r"):
            sender = a[2:] or (args.pop(0) if args else None)
            if sender is None:
                raise SendmailError(EX_USAGE, f"{a} needs an address")
        elif a.startswith("-F"):
            full_name = a[2:] or (args.pop(0) if args else None)
            if full_name is None:
                raise SendmailError(EX_USAGE, "-F needs a name")
        elif a.startswith("-o") or a.startswith("-B") or a in ("-bm", "-em", "-v", "-U"):
            continue  # accepted and ignored, as other sendmail replacements do
        elif a.startswith("-"):
            raise SendmailError(EX_USAGE, f"unsupported option {a}")
        else:
            recipients.extend(x.strip() for x in a.split(",") if x.strip())
    return Invocation(tuple(recipients), t, i, sender, full_name)


def read_message(stream: Any, ignore_dots: bool) -> bytes:
    """The message from stdin; without -i a line with a single "." ends it (sendmail)."""
    lines = []
    for line in stream:
        if not ignore_dots and line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


_FIELD_START = re.compile(rb"[!-9;-~]+:")  # RFC 5322 §3.6.8 field name, then the colon


def add_missing_headers(message: bytes, sender: str, full_name: str | None, domain: str) -> bytes:
    """Prepends From:, Date: and Message-ID: where the message has none (RFC 5322 §3.6:
    From and Date are required; a Message-ID should be there). `domain` is the right-hand
    side of the Message-ID: the sender's domain."""
    headers = BytesHeaderParser().parsebytes(message)
    added = []
    if headers.get("From") is None:
        if not sender:
            raise SendmailError(EX_USAGE, "the message has no From: and no sender is known (-f or `from`)")
        added.append(f"From: {formataddr((full_name or '', sender))}")
    if headers.get("Date") is None:
        added.append(f"Date: {formatdate(localtime=True)}")
    if headers.get("Message-ID") is None:
        added.append(f"Message-ID: {make_msgid(domain=domain or 'localhost')}")
    if not added:
        return message
    newline = "\r\n" if b"\r\n" in message[:1000] else "\n"
    # A message that starts with its body (no header field, no blank line) needs one.
    starts_with_header = _FIELD_START.match(message) is not None or message.startswith((b"\r\n", b"\n"))
    separator = "" if starts_with_header else newline
    return (newline.join(added) + newline + separator).encode("utf-8") + message


def recipients_from_headers(message: bytes) -> tuple[str, ...]:
    headers = BytesHeaderParser().parsebytes(message)
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return tuple(a for _, a in getaddresses(fields) if a)


def strip_bcc(message: bytes) -> bytes:
    """Removes Bcc header fields (with their continuation lines) from the header."""
    out: list[bytes] = []
    skipping = False
    lines = message.splitlines(keepends=True)
    for n, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):
            return b"".join(out) + b"".join(lines[n:])
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            out.append(line)
    return b"".join(out)


@dataclass(frozen=True)
class SubmitConfig:
    host: str
    port: int
    options: SessionOptions
    default_from: str


def load_config(path: Path, hostname: str) -> SubmitConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SendmailError(EX_CONFIG, f"{path}: no such file (see `mailsrv sendmail` in docs/cli.md)") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SendmailError(EX_CONFIG, f"{path}: {e}") from None
    try:
        host, port = parse_host_port(str(data.get("server", "127.0.0.1:587")), 587)
    except ValueError:
        raise SendmailError(EX_CONFIG, f"{path}: server: expected ip:port") from None
    tls = str(data.get("tls", "starttls"))
    if tls not in ("implicit", "starttls", "none"):
        raise SendmailError(EX_CONFIG, f"{path}: tls: expected implicit, starttls or none")
    ca_file = Path(data["ca_file"]) if "ca_file" in data else None
    password = ""
    if "password_file" in data:
        try:
            password = Path(data["password_file"]).read_text().splitlines()[0]
        except (OSError, IndexError) as e:
            raise SendmailError(EX_CONFIG, f"{path}: password_file: {e}") from None
    username = data.get("username")
    client_cert = None
    if "client_cert" in data and (username or "password_file" in data):
        # Either the certificate names the account or the username does: with both, a
        # server would log in as one and bind the connection to the other.
        raise SendmailError(
            EX_CONFIG,
            f"{path}: client_cert and username/password_file exclude each other: the certificate logs in"
            " as the account it is registered to; remove one",
        )
    if "client_cert" in data:
        try:
            client_cert = client_certificate_files(Path(data["client_cert"]))
        except (OSError, ValueError) as e:
            raise SendmailError(EX_CONFIG, f"{path}: client_cert: {e}") from None
    policy: Any = "verify" if ca_file is not None else ("none" if tls == "none" else "required")
    options = SessionOptions(
        helo_name=hostname,
        tls=policy,
        ca_file=ca_file,
        username=str(username) if username else None,
        password=password,
        implicit_tls=tls == "implicit",
        # Plaintext AUTH without TLS only when explicitly configured so (a loopback server).
        allow_plaintext_auth_without_tls=tls == "none",
        client_cert=client_cert,
    )
    return SubmitConfig(host, port, options, str(data.get("from", "")))


def client_certificate_files(path: Path) -> tuple[Path, Path]:
    """(certificate file, key file) for `path`: a PEM holding a private key and a
    certificate, or a bare ed25519 private key, for which a minimal self-signed certificate
    is made (the server identifies the account by the public key only, so its name and
    validity do not matter). Written to a private temporary directory."""
    import atexit
    import shutil
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from mailsrv.tlsutil import self_signed_certificate

    data = path.read_bytes()
    key_start = data.find(b"-----BEGIN PRIVATE KEY-----")
    if key_start < 0:
        key_start = data.find(b"-----BEGIN ")
        while key_start >= 0 and b"PRIVATE KEY-----" not in data[key_start : key_start + 40]:
            key_start = data.find(b"-----BEGIN ", key_start + 1)
    if key_start < 0:
        raise ValueError("no private key in the file")
    key_end = data.find(b"-----END", key_start)
    key_end = data.find(b"\n", key_end) + 1 or len(data)
    key = serialization.load_pem_private_key(data[key_start:key_end], password=None)
    cert_start = data.find(b"-----BEGIN CERTIFICATE-----")
    if cert_start >= 0:
        cert_pem = x509.load_pem_x509_certificate(data[cert_start:]).public_bytes(serialization.Encoding.PEM)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        cert = self_signed_certificate(key, "mailsrv sendmail", 1)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    else:
        raise ValueError("a certificate is needed with a non-ed25519 key")
    directory = Path(tempfile.mkdtemp(prefix="mailsrv-sendmail-"))
    # The key copy must not outlive this process.
    atexit.register(shutil.rmtree, directory, True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def exit_code(result: DeliveryResult) -> tuple[int, str]:
    if result.recipients and all(o.delivered for o in result.recipients):
        return EX_OK, ""
    problems = "; ".join(f"<{o.address}>: {o.reply}" for o in result.recipients if not o.delivered)
    if result.failure is not None and not result.recipients:
        problems = str(result.failure)
    if any(o.temporary for o in result.recipients if not o.delivered):
        return EX_TEMPFAIL, problems
    return EX_UNAVAILABLE, problems


async def submit(reactor: Any, argv: Sequence[str], stdin: Any, config_path: Path | None = None) -> tuple[int, str]:
    """Runs one sendmail invocation; returns (exit code, message for stderr)."""
    try:
        inv = parse_args(argv)
        if inv.help:
            return EX_OK, ""
        path = config_path or Path(os.environ.get("MAILSRV_SENDMAIL_CONFIG", DEFAULT_CONFIG))
        config = load_config(path, "localhost")
        message = read_message(stdin, inv.ignore_dots)
        if not message.strip():
            raise SendmailError(EX_DATAERR, "empty message")
        recipients = list(inv.recipients)
        if inv.from_headers:
            recipients += [r for r in recipients_from_headers(message) if r not in recipients]
        if not recipients:
            raise SendmailError(EX_USAGE, "no recipients")
        sender = inv.sender if inv.sender is not None else config.default_from or (config.options.username or "")
        message = add_missing_headers(message, sender, inv.full_name, sender.rpartition("@")[2])
        result = await send_message(
            reactor, config.host, config.port, Envelope(sender, tuple(recipients)), strip_bcc(message), config.options
        )
    except SendmailError as e:
        return e.code, str(e)
    return exit_code(result)


def main(argv: Sequence[str]) -> int:
    """Entry point for `mailsrv sendmail ARGS` (the CLI calls this)."""
    from twisted.internet import defer, task

    try:
        if parse_args(argv).help:
            print(USAGE, end="")
            return EX_OK
    except SendmailError:
        pass  # reported by submit with the right exit code
    outcome: list[tuple[int, str]] = []

    async def run(reactor: Any) -> None:
        outcome.append(await submit(reactor, argv, sys.stdin.buffer))

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    code, text = outcome[0] if outcome else (EX_TEMPFAIL, "internal error")
    if text:
        print(f"sendmail: {text}", file=sys.stderr)
    return code
