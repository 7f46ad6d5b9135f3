"""Where DKIM private keys live and how submission uses them.

Layout: `DATA_DIR/dkim/<domain A-label>/<selector>.pem` (PKCS#8, mode 0600, written
atomically; the key type is read from the PEM). The selectors in use are
`DomainConfig.dkim_selectors` in dynamic.toml, one signature each; `mailsrv quickstart` and
`mailsrv domain add` create an ed25519 and an RSA key with `create_domain_keys`, list both
selectors and print the TXT records. Quickstart before 2026-12 wrote
`<selector>.ed25519.pem`/`<selector>.rsa.pem` and no selector: `find_key` still reads those
names, so such an installation only needs `dkim_selectors` set.

Invariants:
- A key file is never world-readable, never overwritten (a new selector means a new file:
  rotation publishes the new record before switching `dkim_selectors`).
- `sign_submission` blocks (RSA signing, reading the keys): run it in a thread.
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


def find_key(data_dir: Path, domain: str, selector: str) -> Path | None:
    """The key file of `selector`: `<selector>.pem`, else an older quickstart's
    `<selector>.ed25519.pem` / `<selector>.rsa.pem`; None when there is none."""
    path = key_path(data_dir, domain, selector)
    for candidate in (path, *(path.with_name(f"{selector}.{kind}.pem") for kind in ("ed25519", "rsa"))):
        if candidate.is_file():
            return candidate
    return None


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


def create_domain_keys(data_dir: Path, domain: str, selector_base: str) -> list[tuple[str, str]]:
    """An ed25519 key (selector `<base>e`) and an RSA key (`<base>r`) for `domain`; returns
    (selector, TXT value) pairs in that order. A selector that has a key already keeps it."""
    out = []
    for kind, suffix in (("ed25519", "e"), ("rsa", "r")):
        selector = f"{selector_base}{suffix}"
        try:
            txt = create_key(data_dir, domain, selector, kind)  # type: ignore[arg-type]
        except FileExistsError:
            txt = public_record(data_dir, domain, selector)
        out.append((selector, txt))
    return out


def public_record(data_dir: Path, domain: str, selector: str) -> str:
    """The TXT record value for an existing key (to print it again)."""
    path = find_key(data_dir, domain, selector) or key_path(data_dir, domain, selector)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def sign_submission(data_dir: Path, domain: str, selectors: tuple[str, ...], message: bytes) -> tuple[bytes, list[str]]:
    """The DKIM-Signature fields to prepend to a submitted message from `domain`, one per
    selector whose key is there and works, in order; and why each other selector did not
    sign. Blocks."""
    out = b""
    problems = []
    for selector in selectors:
        path = find_key(data_dir, domain, selector)
        if path is None:
            problems.append(f"selector {selector}: no key file {key_path(data_dir, domain, selector)}")
            continue
        try:
            out += sign(message, domain, selector, path.read_bytes())
        except (OSError, ValueError) as e:
            problems.append(f"selector {selector}: {e}")
    return out, problems


def key_problems(data_dir: Path, domain: str, selectors: tuple[str, ...]) -> list[str]:
    """Why `domain` cannot sign with each of `selectors` (empty: every key is there and loads)."""
    problems = []
    for selector in selectors:
        path = find_key(data_dir, domain, selector)
        if path is None:
            problems.append(f"selector {selector}: no key file {key_path(data_dir, domain, selector)}")
            continue
        try:
            serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            problems.append(f"selector {selector}: key {path} unusable: {e}")
    return problems
