"""The SMTP DSN extension's parameters (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on
RCPT, and the xtext encoding they travel in (RFC 3461 §4).

Shared by the server (parsing what a client sends), the queue (storing the request) and the
client (passing it on to a next hop that offers DSN).

Invariants:
- Values are kept decoded; `xtext_encode` is applied only when a value goes out on the wire.
- A decoded ENVID or ORCPT address holds only printable US-ASCII (0x20-0x7e): it is copied
  into DSN header fields (`Original-Envelope-Id:`, `Original-Recipient:`), so no CR/LF or
  other control character can come through.
- `RecipientDSN.notify == ()` means the client gave no NOTIFY: the default applies, which is
  FAILURE,DELAY (RFC 3461 §4.1, left to the MTA; we report both as before DSN support).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DSNAction = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")
ENVID_MAX = 100  # RFC 3461 §4.4: at most 100 characters
ORCPT_MAX = 500  # RFC 3461 §4.2: at most 500 characters
_HEX = re.compile(r"[0-9A-F]{2}")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


class DSNParameterError(ValueError):
    """A malformed DSN parameter; the server answers 501 5.5.4 with the message."""


def xtext_decode(text: str) -> str:
    """RFC 3461 §4: xchar is "!".."~" except "+" and "="; "+XX" (upper-case hex) encodes any
    octet. Raises DSNParameterError for anything else or a decoded control character."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "+":
            pair = text[i + 1 : i + 3]
            if not _HEX.fullmatch(pair):
                raise DSNParameterError("bad xtext: '+' must be followed by two upper-case hex digits")
            c = chr(int(pair, 16))
            i += 3
        elif "!" <= c <= "~" and c != "=":
            i += 1
        else:
            raise DSNParameterError("bad xtext character")
        if not " " <= c <= "~":
            raise DSNParameterError("xtext decodes to a non-printable character")
        out.append(c)
    return "".join(out)


def xtext_encode(value: str) -> str:
    out = []
    for byte in value.encode("utf-8"):
        c = chr(byte)
        out.append(c if "!" <= c <= "~" and c not in "+=" else f"+{byte:02X}")
    return "".join(out)


@dataclass(frozen=True)
class MessageDSN:
    """MAIL FROM's RET and ENVID; "" where the client gave none."""

    ret: Literal["", "FULL", "HDRS"] = ""
    envid: str = ""


@dataclass(frozen=True)
class RecipientDSN:
    """RCPT TO's NOTIFY (upper case, () for not given) and ORCPT ("addr-type;address", decoded)."""

    notify: tuple[str, ...] = ()
    orcpt: str = ""

    def wants(self, action: DSNAction) -> bool:
        """Whether a DSN with this action may be sent for the recipient (RFC 3461 §4.1)."""
        notify = self.notify or ("FAILURE", "DELAY")
        if action == "failed":
            return "FAILURE" in notify
        if action == "delayed":
            return "DELAY" in notify
        return "SUCCESS" in notify

    def store_notify(self) -> str:
        return ",".join(self.notify)

    @classmethod
    def stored(cls, notify: str, orcpt: str) -> RecipientDSN:
        return cls(tuple(n for n in notify.split(",") if n), orcpt)


def parse_ret(value: str | None) -> Literal["FULL", "HDRS"]:
    word = (value or "").upper()
    if word == "FULL":
        return "FULL"
    if word == "HDRS":
        return "HDRS"
    raise DSNParameterError("RET must be FULL or HDRS")


def parse_envid(value: str | None) -> str:
    if not value:
        raise DSNParameterError("ENVID needs a value")
    if len(value) > ENVID_MAX:
        raise DSNParameterError(f"ENVID longer than {ENVID_MAX} characters")
    return xtext_decode(value)


def parse_notify(value: str | None) -> tuple[str, ...]:
    """RFC 3461 §4.1: NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY."""
    words = [w.upper() for w in (value or "").split(",")]
    if words == ["NEVER"]:
        return ("NEVER",)
    if not words or any(w not in NOTIFY_KEYWORDS for w in words):
        raise DSNParameterError("NOTIFY must be NEVER, or a list of SUCCESS, FAILURE, DELAY")
    if len(set(words)) != len(words):
        raise DSNParameterError("NOTIFY names a keyword twice")
    return tuple(w for w in NOTIFY_KEYWORDS if w in words)


def parse_orcpt(value: str | None) -> str:
    """RFC 3461 §4.2: ORCPT=addr-type;xtext. Returns "addr-type;decoded-address"."""
    if not value:
        raise DSNParameterError("ORCPT needs a value")
    if len(value) > ORCPT_MAX:
        raise DSNParameterError(f"ORCPT longer than {ORCPT_MAX} characters")
    addr_type, semi, address = value.partition(";")
    if not semi or not _ATOM.fullmatch(addr_type) or not address:
        raise DSNParameterError("ORCPT must be addr-type;address")
    return f"{addr_type};{xtext_decode(address)}"


def mail_parameters(dsn: MessageDSN) -> list[str]:
    """The MAIL FROM parameters that pass `dsn` on to a next hop offering DSN."""
    params = []
    if dsn.ret:
        params.append(f"RET={dsn.ret}")
    if dsn.envid:
        params.append(f"ENVID={xtext_encode(dsn.envid)}")
    return params


def rcpt_parameters(dsn: RecipientDSN) -> list[str]:
    params = []
    if dsn.notify:
        params.append("NOTIFY=" + ",".join(dsn.notify))
    if dsn.orcpt:
        addr_type, _, address = dsn.orcpt.partition(";")
        params.append(f"ORCPT={addr_type};{xtext_encode(address)}")
    return params


# Shared defaults ("no DSN parameters given"); both classes are frozen.
NO_MESSAGE_DSN = MessageDSN()
NO_RECIPIENT_DSN = RecipientDSN()
