"""Dovecot as an independent reference for what IMAP answers about a message: a throwaway
Maildir and Dovecot's imap binary in pre-authenticated mode on stdin/stdout (no daemon,
no port). Needs the Debian package dovecot-imapd; `dovecot_imap()` is None without it."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

IMAP_BINARY = "/usr/lib/dovecot/imap"
PACKAGE = "dovecot-imapd"

_CONF = """
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
mail_location = maildir:{dir}/mail
mail_uid = {user}
mail_gid = {group}
first_valid_uid = 1
"""


def dovecot_imap() -> str | None:
    return IMAP_BINARY if os.access(IMAP_BINARY, os.X_OK) and shutil.which("doveconf") else None


def fetch_all(messages: list[bytes], items: str, directory: Path) -> list[bytes]:
    """Each message's ``* n FETCH (...)`` response line (literals included) for `items`."""
    binary = dovecot_imap()
    assert binary is not None
    mail = directory / "mail"
    for sub in ("new", "cur", "tmp"):
        (mail / sub).mkdir(parents=True, exist_ok=True)
    for i, raw in enumerate(messages, 1):
        (mail / "cur" / f"{i:06d}.ref:2,").write_bytes(raw)
    env = dict(os.environ, HOME=str(directory))
    if os.geteuid() == 0:
        # Dovecot refuses mail access as root: it drops to nobody, who must own the Maildir.
        user = pwd.getpwnam("nobody")
        group = "nogroup"
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        env["USER"] = "nobody"
    else:
        user = pwd.getpwuid(os.geteuid())
        group = str(os.getegid())
        env["USER"] = user.pw_name
    conf = directory / "dovecot.conf"
    conf.write_text(_CONF.format(dir=directory, user=user.pw_name, group=group))
    script = f"a SELECT INBOX\r\nb FETCH 1:* ({items})\r\nc LOGOUT\r\n".encode()
    out = subprocess.run(
        [binary, "-c", str(conf)], input=script, capture_output=True, env=env, timeout=120, check=True
    ).stdout
    return _fetch_lines(out)


def _fetch_lines(out: bytes) -> list[bytes]:
    """Splits the output into FETCH responses, keeping literals whole."""
    lines: list[bytes] = []
    pos = 0
    current = b""
    while pos < len(out):
        end = out.find(b"\r\n", pos)
        if end < 0:
            break
        line = out[pos:end]
        pos = end + 2
        current += line
        m = re.search(rb"\{(\d+)\}$", line)
        if m:
            n = int(m.group(1))
            current += b"\r\n" + out[pos : pos + n]
            pos += n
            continue
        if re.match(rb"\* \d+ FETCH ", current):
            lines.append(current)
        current = b""
    return lines
