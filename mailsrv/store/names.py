"""Mailbox names: the normal form (NFC, "INBOX" case-insensitively: RFC 9051 §5.1) and
what a name may contain."""

from __future__ import annotations

import unicodedata

from mailsrv.store.interfaces import MailboxNameInvalid


def normalize_mailbox_name(name: str) -> str:
    """NFC, "INBOX" case-insensitively, no empty hierarchy levels (RFC 9051 §5.1)."""
    name = unicodedata.normalize("NFC", name)
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX/"):
        name = "INBOX" + name[5:]
    return name


def check_mailbox_name(name: str) -> None:
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise MailboxNameInvalid(f"invalid mailbox name {name!r}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name) or len(name.encode()) > 1000:
        raise MailboxNameInvalid("mailbox name has control characters or is too long")
    for bad in ("*", "%"):
        if bad in name:
            raise MailboxNameInvalid(f"mailbox name may not contain {bad!r}")


def like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
