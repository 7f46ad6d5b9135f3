"""The web admin interface's password: one argon2id hash (the account passwords' hasher,
`mailsrv.auth.passwords`) in `DATA_DIR/adminpasswd`, mode 0600, replaced atomically.

Set by `mailsrv setadminpassword` and by quickstart; read at every admin login, so a change
applies at once without a restart. No file: no admin password, password logins refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from mailsrv.auth.passwords import PasswordHasher

FILE_NAME = "adminpasswd"


def path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def set_password(data_dir: Path, password: str, hasher: PasswordHasher) -> None:
    """Hashes and stores `password` (blocks: argon2)."""
    write_hash(data_dir, hasher.hash(password))


def write_hash(data_dir: Path, password_hash: str) -> None:
    final = path(data_dir)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = final.with_name(f".{FILE_NAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, password_hash.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


def read_hash(data_dir: Path) -> str | None:
    try:
        text = path(data_dir).read_text("ascii").strip()
    except FileNotFoundError:
        return None
    return text or None


def verify(data_dir: Path, password: str, hasher: PasswordHasher) -> bool:
    """Whether `password` is the admin password (blocks: argon2). Without one set, a dummy hash
    is verified so that the answer takes as long, and is False."""
    stored = read_hash(data_dir)
    if stored is None:
        hasher.verify(password, hasher.dummy_hash)
        return False
    return hasher.verify(password, stored)
