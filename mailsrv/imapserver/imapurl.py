"""IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE uses them (RFC 4469).

Only the URLAUTH-less subset that can name a message of the logged-in account is accepted:

- ``imap://[user[;AUTH=...]@]host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]``
- the same without scheme and server, starting at ``/mailbox`` (an absolute path), and
- a relative path ``;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`` resolved against the selected
  mailbox (RFC 5092 §7.2 irelative-path).

Mailbox names are UTF-8, percent-encoded (RFC 5092 §3.2). Anything else (URLAUTH's
``;EXPIRE=``/``;URLAUTH=``, a message list ``?search``, a missing UID) is refused with
`BadURL`, which the APPEND handler answers with ``NO [BADURL url]``. Whether the user and
host name this account and server is decided by the caller, which knows both.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

MAX_URL_LENGTH = 4096

_SERVER = re.compile(
    r"imap://(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/]*)(?::(?P<port>[0-9]{1,5}))?(?=/|\Z)", re.I
)
_NUMBER = re.compile(r"[0-9]{1,10}\Z")


class BadURL(Exception):
    """The URL is malformed, unsupported, or names nothing this session may read."""


@dataclass(frozen=True)
class MessageURL:
    user: str | None  # decoded, without ;AUTH=; None when the URL has no server part
    host: str | None
    mailbox: str | None  # None: relative to the selected mailbox
    uidvalidity: int | None
    uid: int
    section: str  # "" for the whole message; e.g. "1.2", "HEADER", "1.MIME" (upper-case)
    partial: tuple[int, int | None] | None  # (offset, length or None for "to the end")


def _number(text: str, what: str, *, nonzero: bool = True) -> int:
    if not _NUMBER.match(text):
        raise BadURL(f"bad {what}")
    n = int(text)
    if n > 2**32 - 1 or (nonzero and n == 0):
        raise BadURL(f"bad {what}")
    return n


def _decode(text: str) -> str:
    try:
        return urllib.parse.unquote(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadURL("percent-encoded text is not UTF-8") from None


def parse(url: str) -> MessageURL:
    """Parses `url`; raises `BadURL`."""
    if len(url) > MAX_URL_LENGTH or any(c in url for c in " \r\n\t\0"):
        raise BadURL("bad URL")
    user: str | None = None
    host: str | None = None
    path = url
    if url[:7].lower() == "imap://":
        m = _SERVER.match(url)
        if m is None:
            raise BadURL("bad server part")
        if m.group("user") is not None:
            user = _decode(re.split(";auth=", m.group("user"), maxsplit=1, flags=re.I)[0])
        host = _decode(m.group("host")).lower()
        path = url[m.end() :]
        if not path.startswith("/"):
            raise BadURL("the URL names no message")
    elif "://" in url[:20]:
        raise BadURL("not an IMAP URL")
    if "?" in path:
        raise BadURL("message lists are not allowed here")

    mailbox: str | None = None
    uidvalidity: int | None = None
    if path.startswith("/"):
        # "/mailbox[;UIDVALIDITY=n]/;UID=n...": the mailbox runs up to "/;UID=".
        cut = path.upper().find("/;UID=")
        if cut <= 1:
            raise BadURL("the URL names no message")
        ref, path = path[1:cut], path[cut + 1 :]
        name, sep, validity = ref.partition(";")
        if sep:
            key, _, value = validity.partition("=")
            if key.upper() != "UIDVALIDITY":
                raise BadURL(f"unknown mailbox parameter {key}")
            uidvalidity = _number(value, "UIDVALIDITY")
        mailbox = _decode(name)
        if not mailbox:
            raise BadURL("empty mailbox name")

    uid: int | None = None
    section = ""
    partial: tuple[int, int | None] | None = None
    for i, piece in enumerate(path.split("/")):
        key, eq, value = piece.partition("=")
        key = key.upper()
        if not eq:
            raise BadURL(f"unexpected {piece!r}")
        if i == 0:
            if key != ";UID":
                raise BadURL("the URL names no message")
            uid = _number(value, "UID")
        elif key == ";SECTION" and not section and partial is None:
            section = _decode(value).upper()
            if not section:
                raise BadURL("empty section")
        elif key == ";PARTIAL" and partial is None:
            offset, dot, length = value.partition(".")
            start = _number(offset, "partial offset", nonzero=False)
            partial = (start, _number(length, "partial length") if dot else None)
        elif key in (";EXPIRE", ";URLAUTH"):
            raise BadURL("URLAUTH is not supported")
        else:
            raise BadURL(f"unexpected {piece!r}")
    assert uid is not None
    return MessageURL(user, host, mailbox, uidvalidity, uid, section, partial)


def display(url: str) -> str:
    """`url` as it may appear inside a ``[BADURL ...]`` response code (RFC 4469 §5,
    url-resp-text: TEXT-CHARs except "]"): anything else dropped, length bounded."""
    return "".join(c for c in url[:200] if " " <= c <= "~" and c != "]") or "-"
