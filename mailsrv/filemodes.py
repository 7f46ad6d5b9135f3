"""Files the daemon, the CLI and quickstart create are private to the service user.

The data directory holds password-equivalent secrets (auth.db: CRAM-MD5 states and SCRAM
salted secrets), DKIM and TLS keys, and every message and index. Issue 17 item 1: with
umask 022 `data/` was 0755 and `auth.db` 0644, and a local user logged in as the admin
with what they read. So every entry point sets umask 077 before it creates anything
(directories 0700, files 0600, SQLite's -wal/-shm files follow their database), and the
daemon tightens an existing installation's data directory at start, logging what it did.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def set_private_umask() -> None:
    """From now on this process creates directories 0700 and files 0600."""
    os.umask(PRIVATE_UMASK)


def make_tree_private(root: Path) -> list[Path]:
    """Removes group and other permission bits from `root` and everything under it
    (symbolic links are neither followed nor changed); returns the paths changed. A
    directory that cannot be read is left to fail where it is used."""
    changed: list[Path] = []

    def fix(path: Path, st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700, follow_symlinks=False)
            changed.append(path)

    try:
        fix(root, root.lstat())
    except FileNotFoundError:
        return changed
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            path = Path(entry.path)
            fix(path, st)
            if stat.S_ISDIR(st.st_mode):
                pending.append(path)
    return changed
