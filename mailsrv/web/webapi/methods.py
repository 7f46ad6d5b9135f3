"""The webapi methods: each turns its mox-shaped request into ops calls and the ops result
into its mox-shaped response. Nothing here decides anything mail-related: sending is
mailsrv/ops/compose.py → submission (the SMTP submission path), messages are
mailsrv/ops/messages.py → mailsrv/ops/mail.py, suppressions are mailsrv/ops/suppressions.py.

A method raises `MethodError` for a mox error code of its own; ops errors are mapped to
codes by the resource (mailsrv/web/webapi/resource.py).
"""

from __future__ import annotations

import datetime
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.ops import messages, suppressions
from mailsrv.ops.compose import Attachment, Draft, Mailbox, SendOptions, send_message
from mailsrv.ops.errors import NotFound
from mailsrv.ops.mail import MailContext
from mailsrv.web.webapi import types as t
from mailsrv.web.webapi.forms import Upload

if TYPE_CHECKING:
    from twisted.web.server import Request

    from mailsrv.server import Server


class MethodError(Exception):
    """A refusal with a mox error code (HTTP 400 `{"Code", "Message"}`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Call:
    """One authenticated call: who, from where, and what the form carried besides the request."""

    server: Server
    account: str
    login_address: Address | None
    client_ip: str
    secure: bool
    request: Request
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def mail_context(self) -> MailContext:
        return MailContext(self.server.stores.open(self.account), self.server.mail_hooks)


@dataclass(frozen=True)
class Raw:
    """A non-JSON answer (MessageRawGet, MessagePartGet)."""

    data: bytes
    content_type: str
    filename: str = ""


Handler = Callable[[Call, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    request: type[msgspec.Struct]
    result: type[msgspec.Struct] | None  # None: the answer is bytes (Raw)
    handler: Handler
    summary: str


# --- Send -------------------------------------------------------------------------------


def _mailbox(a: t.NameAddress) -> Mailbox:
    return Mailbox(address=a.Address.strip(), name=a.Name)


def _check_address(a: t.NameAddress) -> None:
    try:
        Address.parse(a.Address.strip())
    except AddressError as e:
        raise MethodError("badAddress", f"parsing address {a.Address!r}: {e}") from None


def _content_id(value: str) -> str:
    return value.strip().removeprefix("<").removesuffix(">")


def _attachment(name: str, content_type: str, content_id: str, data: bytes, inline: bool) -> Attachment:
    if not content_type:
        content_type = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    return Attachment(
        filename=name, data=data, content_type=content_type, inline=inline, content_id=_content_id(content_id)
    )


def _files(json_files: list[t.File], uploads: list[Upload], inline: bool) -> list[Attachment]:
    out = [_attachment(f.Name, f.ContentType, f.ContentID, f.Data, inline) for f in json_files]
    out += [_attachment(u.name, u.content_type, u.content_id, u.data, inline) for u in uploads]
    return out


async def send(call: Call, req: t.SendRequest) -> t.SendResult:
    if not req.Text and not req.HTML and not req.AlternativeFiles and not call.files.get("alternativefile"):
        raise MethodError("missingBody", "at least text or html body required")
    if len(req.From) > 1:
        raise MethodError("multipleFrom", "multiple from-addresses not allowed")
    sender = req.From[0] if req.From else None
    if sender is None:
        sender = t.NameAddress(Name=_full_name(call), Address=_default_from(call))
    for a in [sender, *req.To, *req.CC, *req.BCC, *req.ReplyTo]:
        _check_address(a)
    if not (req.To or req.CC or req.BCC):
        raise MethodError("noRecipients", "no recipients")
    if req.MessageID and not (req.MessageID.startswith("<") and req.MessageID.endswith(">")):
        raise MethodError("malformedMessageID", "missing <> in message-id")
    draft = Draft(
        from_=_mailbox(sender),
        to=[_mailbox(a) for a in req.To],
        cc=[_mailbox(a) for a in req.CC],
        bcc=[_mailbox(a) for a in req.BCC],
        reply_to=[_mailbox(a) for a in req.ReplyTo],
        subject=req.Subject,
        text=req.Text,
        html=req.HTML,
        message_id=req.MessageID,
        references=req.References,
        date=req.Date,
        headers=list(req.Headers),
        alternatives=_files(req.AlternativeFiles, call.files.get("alternativefile", []), True),
        related=_files(req.InlineFiles, call.files.get("inlinefile", []), True),
        attachments=_files(req.AttachedFiles, call.files.get("attachedfile", []), False),
    )
    options = SendOptions(
        requiretls=req.RequireTLS,
        save_sent=req.SaveSent,
        extra=req.Extra,
        release_at=req.FutureRelease,
        client_name="webapi",
        client_ip=call.client_ip,
        via="HTTPS" if call.secure else "HTTP",
    )
    sent = await send_message(call.server, call.account, call.login_address, draft, options)
    queued = {Address.parse(q.address).key(): q for q in sent.delivery.queued_recipients}
    submissions = []
    for a in [*req.To, *req.CC, *req.BCC]:
        q = queued.get(Address.parse(a.Address.strip()).key())
        submissions.append(
            t.Submission(Address=a.Address, QueueMsgID=q.queue_id if q else 0, FromID=q.fromid if q else "")
        )
    return t.SendResult(MessageID=sent.message_id, Submissions=submissions)


def _full_name(call: Call) -> str:
    account = call.server.dynamic.account_by_name(call.account)
    return account.full_name if account is not None else ""


def _default_from(call: Call) -> str:
    """mox: the login address; ours falls back to the account's first address."""
    if call.login_address is not None:
        return str(call.login_address)
    account = call.server.dynamic.account_by_name(call.account)
    if account is None or not account.addresses:
        raise MethodError("badFrom", "the account has no address to send from")
    return str(account.addresses[0])


# --- suppression lists ------------------------------------------------------------------


def _suppression(entry: suppressions.Suppression) -> t.Suppression:
    return t.Suppression(
        ID=entry.id,
        Created=datetime.datetime.fromtimestamp(entry.created, datetime.UTC),
        Account=entry.account,
        BaseAddress=entry.base_address,
        OriginalAddress=entry.original_address,
        Manual=entry.manual,
        Reason=entry.reason,
    )


async def suppression_list(call: Call, req: t.SuppressionListRequest) -> t.SuppressionListResult:
    entries = await suppressions.suppression_list(call.server, suppressions.ListSuppressions(account=call.account))
    return t.SuppressionListResult(Suppressions=[_suppression(e) for e in entries])


async def suppression_add(call: Call, req: t.SuppressionAddRequest) -> t.SuppressionAddResult:
    request = suppressions.AddSuppression(
        account=call.account, address=req.EmailAddress, manual=req.Manual, reason=req.Reason
    )
    await suppressions.suppression_add(call.server, request)
    return t.SuppressionAddResult()


async def suppression_remove(call: Call, req: t.SuppressionRemoveRequest) -> t.SuppressionRemoveResult:
    request = suppressions.SuppressionAddress(account=call.account, address=req.EmailAddress)
    await suppressions.suppression_remove(call.server, request)
    return t.SuppressionRemoveResult()


async def suppression_present(call: Call, req: t.SuppressionPresentRequest) -> t.SuppressionPresentResult:
    request = suppressions.SuppressionAddress(account=call.account, address=req.EmailAddress)
    present = await suppressions.suppression_present(call.server, request)
    return t.SuppressionPresentResult(Present=present.present)


# --- messages ---------------------------------------------------------------------------


async def _message(call: Call, message_id: int) -> None:
    try:
        await messages.find(call.server.stores.open(call.account), message_id)
    except NotFound:
        raise MethodError("messageNotFound", "message not found") from None


def _names(addresses: list[messages.NameAddress]) -> list[t.NameAddress]:
    return [t.NameAddress(Name=a.name, Address=a.address) for a in addresses]


def _structure(s: messages.PartStructure) -> t.Structure:
    return t.Structure(
        ContentType=s.content_type,
        ContentTypeParams=s.content_type_params,
        ContentID=s.content_id,
        ContentDisposition=s.content_disposition,
        Filename=s.filename,
        DecodedSize=s.decoded_size,
        Parts=[_structure(p) for p in s.parts],
    )


def mox_flags(flags: list[str]) -> list[str]:
    """Flags as mox writes them: system flags and keywords in lower case (IMAP compares them
    case-insensitively)."""
    return [f.lower() for f in flags]


def mox_mailbox_name(name: str) -> str:
    """mox calls the inbox "Inbox" (as the incoming webhooks do); other names are as stored."""
    return "Inbox" if name.upper() == "INBOX" else name


async def message_get(call: Call, req: t.MessageGetRequest) -> t.MessageGetResult:
    await _message(call, req.MsgID)
    view = await messages.message_view(call.server.stores.open(call.account), req.MsgID)
    message = t.Message(
        From=_names(view.from_),
        To=_names(view.to),
        CC=_names(view.cc),
        BCC=_names(view.bcc),
        ReplyTo=_names(view.reply_to),
        MessageID=view.message_id,
        References=view.references,
        Date=view.date,
        Subject=view.subject,
        Text=view.text,
        HTML=view.html,
    )
    meta = t.MessageMeta(
        Size=view.size,
        DSN=view.meta.dsn,
        Flags=mox_flags(view.flags),
        MailFrom=view.meta.mail_from,
        MailFromValidated=view.meta.mail_from_validated,
        RcptTo=view.meta.rcpt_to,
        MsgFrom=view.meta.msg_from,
        MsgFromValidated=view.meta.msg_from_validated,
        DKIMVerifiedDomains=view.meta.dkim_verified_domains,
        RemoteIP=view.meta.remote_ip,
        MailboxName=mox_mailbox_name(view.mailbox),
    )
    return t.MessageGetResult(Message=message, Structure=_structure(view.structure), Meta=meta)


async def message_raw_get(call: Call, req: t.MessageRawGetRequest) -> Raw:
    await _message(call, req.MsgID)
    data = await messages.message_raw(call.server.stores.open(call.account), req.MsgID)
    return Raw(data, "text/plain")


async def message_part_get(call: Call, req: t.MessagePartGetRequest) -> Raw:
    await _message(call, req.MsgID)
    try:
        part, data = await messages.message_part(call.server.stores.open(call.account), req.MsgID, req.PartPath)
    except NotFound as e:
        raise MethodError("partNotFound", e.message) from None
    filename = part.disposition_params.get("filename") or part.params.get("name") or ""
    return Raw(data, f"{part.media_type}/{part.media_subtype}", filename)


async def message_delete(call: Call, req: t.MessageDeleteRequest) -> t.MessageDeleteResult:
    await _message(call, req.MsgID)
    await messages.delete(call.mail_context(), req.MsgID)
    return t.MessageDeleteResult()


async def message_flags_add(call: Call, req: t.MessageFlagsAddRequest) -> t.MessageFlagsAddResult:
    await _message(call, req.MsgID)
    await messages.flags_add(call.mail_context(), req.MsgID, req.Flags)
    return t.MessageFlagsAddResult()


async def message_flags_remove(call: Call, req: t.MessageFlagsRemoveRequest) -> t.MessageFlagsRemoveResult:
    await _message(call, req.MsgID)
    await messages.flags_remove(call.mail_context(), req.MsgID, req.Flags)
    return t.MessageFlagsRemoveResult()


async def message_move(call: Call, req: t.MessageMoveRequest) -> t.MessageMoveResult:
    await _message(call, req.MsgID)
    try:
        await messages.move(call.mail_context(), req.MsgID, req.DestMailboxName)
    except NotFound as e:
        raise MethodError("user", e.message) from None
    return t.MessageMoveResult()


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("Send", t.SendRequest, t.SendResult, send, "compose and submit a message"),
        Method(
            "SuppressionList",
            t.SuppressionListRequest,
            t.SuppressionListResult,
            suppression_list,
            "the account's suppression list",
        ),
        Method(
            "SuppressionAdd", t.SuppressionAddRequest, t.SuppressionAddResult, suppression_add, "suppress an address"
        ),
        Method(
            "SuppressionRemove",
            t.SuppressionRemoveRequest,
            t.SuppressionRemoveResult,
            suppression_remove,
            "stop suppressing an address",
        ),
        Method(
            "SuppressionPresent",
            t.SuppressionPresentRequest,
            t.SuppressionPresentResult,
            suppression_present,
            "whether an address is suppressed",
        ),
        Method("MessageGet", t.MessageGetRequest, t.MessageGetResult, message_get, "a message, parsed"),
        Method("MessageRawGet", t.MessageRawGetRequest, None, message_raw_get, "a message as stored"),
        Method("MessagePartGet", t.MessagePartGetRequest, None, message_part_get, "one MIME part, decoded"),
        Method("MessageDelete", t.MessageDeleteRequest, t.MessageDeleteResult, message_delete, "delete a message"),
        Method("MessageFlagsAdd", t.MessageFlagsAddRequest, t.MessageFlagsAddResult, message_flags_add, "set flags"),
        Method(
            "MessageFlagsRemove",
            t.MessageFlagsRemoveRequest,
            t.MessageFlagsRemoveResult,
            message_flags_remove,
            "clear flags",
        ),
        Method("MessageMove", t.MessageMoveRequest, t.MessageMoveResult, message_move, "move to another mailbox"),
    )
}
