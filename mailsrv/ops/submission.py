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


def new_message_id(domain: str) -> str:
    """A fresh `<unique@domain>` (RFC 5322 §3.6.4)."""
    unique = email.utils.make_msgid().strip("<>").split("@")[0]
    return f"<{unique}@{domain}>"


# --- submitting ------------------------------------------------------------------------------------------------


async def submit(server: Server, envelope: Envelope, data: bytes, login_address: Address | None) -> DeliveryResult:
    """Checks the From: against the envelope's account, adds Message-ID/Date, signs and
    delivers (local copies stored, remote recipients queued). Raises InvalidInput (From: field),
    SendAsDenied, and whatever `deliver` raises."""
    if envelope.account is None:
        raise SendAsDenied("submission needs an authenticated account")
    sender = from_address(data)
    if not may_send_as(server, envelope.account, login_address, sender):
        raise SendAsDenied(f"not allowed to send as {sender.display()}")
    domain = sender.domain.ascii
    extra = added_fields(data, domain)
    # Sign what leaves: our added Message-ID/Date included (RFC 6376 §5.4).
    extra = await dkim_sign(server, domain, extra + data) + extra
    return await deliver(server, envelope, data, extra)
