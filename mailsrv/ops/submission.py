"""Sending mail as an account: who may send as which address, the header fields a submitted
message gets (Message-ID, Date), DKIM signing, and handing it to delivery (local copies and the
outgoing queue). SMTP submission calls `check_envelope_sender` at MAIL and `submit` after DATA;
webmail and the web API compose with mailsrv/ops/compose.py and call `submit` too.

Invariants:
- RFC 6409 §8: a submitted message has exactly one From: field with exactly one address, and
  the account may send as it (its own addresses, an alias that allows members to send as it, or
  the directory's login address). Field names are compared the way readers see them: a `From :`
  field (obsolete syntax, RFC 5322 §4.5.3: white space before the colon) is a From: field too, so
  a second one cannot slip past the check and show up in a mail client.
- The envelope sender is tied to the account the same way (or is the null path).
- Mail is DKIM-signed (mailsrv/ops/dkim.py) over the message as it leaves, added fields
  included (RFC 6376 §5.4).
"""

from __future__ import annotations

import email.utils
import re
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.address import Address, AddressError
from mailsrv.config.types import AccountConfig, AliasConfig
from mailsrv.message.parse import header_end
from mailsrv.ops.compose import new_message_id  # without make_msgid's getfqdn per call
from mailsrv.ops.delivery import DeliveryResult, Envelope, deliver
from mailsrv.ops.dkim import dkim_sign
from mailsrv.ops.errors import InvalidInput, SendAsDenied

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()


# --- may send as ------------------------------------------------------------------------------------------------


def may_send_as(server: Server, account: str, login_address: Address | None, address: Address) -> bool:
    """Whether `account` may use `address` as its From: or envelope sender."""
    target = server.dynamic.lookup(address)
    if isinstance(target, AccountConfig):
        return target.name == account
    if isinstance(target, AliasConfig) and target.allow_msg_from:
        acc = server.dynamic.account_by_name(account)
        keys = {m.key() for m in target.members}
        return acc is not None and any(a.key() in keys for a in acc.addresses)
    if target is None and login_address is not None:
        return address.key() == login_address.key()
    return False


def check_envelope_sender(server: Server, account: str, login_address: Address | None, sender: Address | None) -> None:
    """MAIL FROM on submission: the null path, or an address the account may send as. Raises
    SendAsDenied."""
    if sender is not None and not may_send_as(server, account, login_address, sender):
        raise SendAsDenied(f"not allowed to send as {sender.display()}")


_FIELD_START = re.compile(rb"([^\s:][^:\r\n]*?)[ \t]*:")


def header_field_values(data: bytes, name: str) -> list[str]:
    """The unfolded values of every header field called `name` (case-insensitive), white space
    before the colon allowed (RFC 5322 §4.5.3 obs-optional: mail clients show `From :` as From),
    8-bit text read as UTF-8 (RFC 6532)."""
    end = header_end(data, 0, len(data))
    wanted = name.lower().encode()
    values: list[bytearray] = []
    current: bytearray | None = None
    for line in data[:end].split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current += b" " + line.strip()
            continue
        current = None
        m = _FIELD_START.match(line)
        if m is not None and m.group(1).lower() == wanted:
            current = bytearray(line[m.end() :].strip())
            values.append(current)
    return [bytes(v).decode("utf-8", "replace") for v in values]


def from_address(data: bytes) -> Address:
    """The one From: address of a message. Raises InvalidInput when there is not exactly one
    From: field with exactly one address."""
    fields = header_field_values(data, "From")
    if len(fields) != 1:
        raise InvalidInput("the message needs exactly one From: field", field="From")
    addresses = email.utils.getaddresses(fields)
    if len(addresses) != 1 or not addresses[0][1]:
        raise InvalidInput("the message needs exactly one From: address", field="From")
    try:
        return Address.parse(addresses[0][1])
    except AddressError:
        raise InvalidInput("invalid From: address", field="From") from None


def added_fields(data: bytes, domain: str) -> bytes:
    """Message-ID and Date when the message has none (RFC 6409 §8.3, §8.2)."""
    extra = b""
    if not header_field_values(data, "Message-ID"):
        extra += f"Message-ID: {new_message_id(domain)}\r\n".encode()
    if not header_field_values(data, "Date"):
        extra += f"Date: {email.utils.formatdate(localtime=True)}\r\n".encode()
    return extra


# --- submitting ------------------------------------------------------------------------------------------------


# --- Extra data and fromid --------------------------------------------------------------------------------------

EXTRA_PREFIX = "x-mox-extra-"
MAX_EXTRA = 100  # keys per message
MAX_EXTRA_SIZE = 8 * 1024  # octets of keys and values together


def canonical_extra_key(key: str) -> str:
    """`x-order-ID` -> `X-Order-Id`: each dash-separated word capitalised (as mox does)."""
    return "-".join(w[:1].upper() + w[1:].lower() for w in key.split("-"))


def check_extra(extra: dict[str, str]) -> dict[str, str]:
    """Validated Extra data (keys canonical). Raises InvalidInput."""
    out: dict[str, str] = {}
    size = 0
    if len(extra) > MAX_EXTRA:
        raise InvalidInput(f"at most {MAX_EXTRA} Extra keys", field="Extra")
    for key, value in extra.items():
        if not key or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", key):
            raise InvalidInput(f"Extra key {key!r}: letters, digits and dashes", field="Extra")
        if any(c in value for c in "\r\n\0"):
            raise InvalidInput(f"Extra value of {key!r} has a line break", field="Extra")
        canonical = canonical_extra_key(key)
        if canonical in out:
            raise InvalidInput(f"Extra key {canonical!r} given twice", field="Extra")
        out[canonical] = value
        size += len(key.encode()) + len(value.encode())
    if size > MAX_EXTRA_SIZE:
        raise InvalidInput(f"Extra data larger than {MAX_EXTRA_SIZE} octets", field="Extra")
    return out


def take_extra_fields(data: bytes) -> tuple[bytes, dict[str, str]]:
    """Removes the `X-Mox-Extra-<Key>: value` header fields from a submitted message (they are
    for us, not for the recipient) and returns the message and the Extra data they carried."""
    end = header_end(data, 0, len(data))
    if b"x-mox-extra-" not in data[:end].lower():
        return data, {}
    kept: list[bytes] = []
    extra: dict[str, str] = {}
    taking = False
    for line in data[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if taking:
                key = next(reversed(extra))
                extra[key] += " " + line.strip().decode("utf-8", "replace")
            else:
                kept.append(line)
            continue
        m = _FIELD_START.match(line)
        taking = m is not None and m.group(1).lower().startswith(EXTRA_PREFIX.encode())
        if taking and m is not None:
            key = m.group(1)[len(EXTRA_PREFIX) :].decode("utf-8", "replace")
            extra[key] = line[m.end() :].strip().decode("utf-8", "replace")
        else:
            kept.append(line)
    return b"".join(kept) + data[end:], check_extra(extra)


def fromid_separator(server: Server, account: str, login_address: Address | None, sender: Address | None) -> str:
    """The separator for fromid MAIL FROMs when the login address is one the account marked
    "fromid" and the sender's domain has a catchall separator; else ""."""
    acc = server.dynamic.account_by_name(account)
    if acc is None or login_address is None or sender is None or sender.localpart.needs_quoting():
        return ""
    if login_address.key() not in {a.key() for a in acc.fromid_login_addresses}:
        return ""
    domain = server.dynamic.current.domains.get(sender.domain.ascii)
    return (domain.localpart_catchall_separator or "") if domain is not None else ""


async def submit(
    server: Server,
    envelope: Envelope,
    data: bytes,
    login_address: Address | None,
    extra: dict[str, str] | None = None,
) -> DeliveryResult:
    """Checks the From: against the envelope's account, adds Message-ID/Date, signs and
    delivers (local copies stored, remote recipients queued). `extra` (webapi Send's Extra)
    and the message's `X-Mox-Extra-*` fields (removed from it) travel with the queued copies
    into every event about them. Raises InvalidInput (From: field, Extra), SendAsDenied, and
    whatever `deliver` raises."""
    if envelope.account is None:
        raise SendAsDenied("submission needs an authenticated account")
    data, fields_extra = take_extra_fields(data)
    merged = {**fields_extra, **check_extra(extra or {})}
    if merged:
        envelope.extra = check_extra(merged)
    envelope.fromid_separator = fromid_separator(server, envelope.account, login_address, envelope.mail_from)
    sender = from_address(data)
    if not may_send_as(server, envelope.account, login_address, sender):
        raise SendAsDenied(f"not allowed to send as {sender.display()}")
    domain = sender.domain.ascii
    added = added_fields(data, domain)
    # Sign what leaves: our added Message-ID/Date included (RFC 6376 §5.4).
    added = await dkim_sign(server, domain, added + data) + added
    return await deliver(server, envelope, data, added)
