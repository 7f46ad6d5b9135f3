"""Where DKIM private keys live and how submission uses them.

Layout: `DATA_DIR/dkim/<domain A-label>/<selector>.pem` (PKCS#8, mode 0600, written
atomically). The selector in use is `DomainConfig.dkim_selector` in dynamic.toml; `mailsrv
quickstart` / `domain add` create the key with `create_key` and print the TXT record.

Invariants:
- A key file is never world-readable, never overwritten (a new selector means a new file:
  rotation publishes the new record before switching `dkim_selector`).
- `sign_submission` blocks (RSA signing, reading the key): run it in a thread.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailsrv.dns.dkim import KeyKind, generate_dkim_key, sign

_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def key_path(data_dir: Path, domain: str, selector: str) -> Path:
    if not _SELECTOR.fullmatch(selector):
        raise ValueError(f"bad DKIM selector {selector!r}")
    domain = domain.rstrip(".").lower()
    if not domain or "/" in domain or domain.startswith("."):
        raise ValueError(f"bad domain {domain!r}")
    return Path(data_dir) / "dkim" / domain / f"{selector}.pem"


def create_key(data_dir: Path, domain: str, selector: str, kind: KeyKind = "ed25519") -> str:
    """Generates and stores a key; returns the TXT record value for
    `<selector>._domainkey.<domain>`. FileExistsError if that selector already has a key."""
    path = key_path(data_dir, domain, selector)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem, txt = generate_dkim_key(kind)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if the file exists: never overwrite a key
    finally:
        tmp.unlink()
    return txt


def public_record(data_dir: Path, domain: str, selector: str) -> str:
    """The TXT record value for an existing key (to print it again)."""
    key = serialization.load_pem_private_key(key_path(data_dir, domain, selector).read_bytes(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def sign_submission(data_dir: Path, domain: str, selector: str | None, message: bytes) -> bytes:
    """The DKIM-Signature field to prepend to a submitted message from `domain`, or b"" when
    the domain has no selector or key (mail then goes out unsigned). Blocks."""
    if not selector:
        return b""
    try:
        pem = key_path(data_dir, domain, selector).read_bytes()
    except (FileNotFoundError, ValueError):
        return b""
    return sign(message, domain, selector, pem)
