"""Writing mail in the webmail: the From: choices, reply/reply-all/forward templates, drafts
kept in the Drafts mailbox and reopened, attachments (uploaded files, or parts of stored
messages), and sending through `ops.compose` / `ops.submission` with a copy in Sent.

- From: choices are the account's addresses and the aliases that allow their members to send
  as them (`AliasConfig.allow_msg_from`) — exactly what `ops.submission.may_send_as` accepts.
  A reply goes out from the address the original was sent to when that is a choice (an alias
  included), else from the account's first address.
- A reply's In-Reply-To and References come from the stored original, not from the browser
  (RFC 5322 §3.6.4); the original gets \\Answered, a forwarded one $Forwarded, once sent.
- A draft is a message in the Drafts mailbox (\\Draft, \\Seen) with its Bcc field and the
  compose options as private header fields (`X-Mailsrv-Send-At`, `X-Mailsrv-Require-TLS`; the
  From choice is its From field): reopened, the form has them again. They never leave: a
  sent message is composed afresh from the form. Saving again stores the new version and
  removes the old. Sending removes the draft.
- Send later: `ComposeForm.send_at` (Unix seconds, 0: now) holds the message for everyone
  until then, recipients on this server too, as the webapi's FutureRelease does
  (mailsrv/ops/scheduled.py); its Sent copy is stored when it goes out. The Scheduled view
  (mailsrv/ops/webmail_scheduled.py) lists, moves and cancels such messages.
- Uploads (`Uploads`) are files under the data directory (0600 in 0700 directories), per
  account, named by a random token, removed after `UPLOAD_TTL` or when sent.
"""

from __future__ import annotations

import datetime
import email.utils
import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from mailsrv.address import Address, AddressError
from mailsrv.config.types import AliasConfig
from mailsrv.message.parse import body_text, decode_text, header_values, parse_headers
from mailsrv.message.part import Part
from mailsrv.ops import compose as composeops
from mailsrv.ops import mail as mailops
from mailsrv.ops.compose import (
    MAX_RELEASE_DELAY,
    Attachment,
    Draft,
    Mailbox,
    ReplyTo,
    SendOptions,
    compose,
    reply_subject,
)
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound
from mailsrv.ops.webmail import Webmail, _content, find, special_mailbox
from mailsrv.ops.webmail_settings import get_settings, note_correspondents
from mailsrv.ops.webmail_view import AddressView, MessageView, build_view, layout, part_content
from mailsrv.ops.webmail_view import MessageFacts as ViewFacts
from mailsrv.store import interfaces as si

if TYPE_CHECKING:
    from mailsrv.server import Server

UPLOAD_TTL = 24 * 3600
MAX_UPLOADS = 200  # per account at once
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


# --- From: choices --------------------------------------------------------------------------


def from_choices(server: Server, account: str) -> list[AddressView]:
    """Addresses the account may send as: its own (with its full name), then the aliases
    with AllowMsgFrom of which one of its addresses is a member."""
    acc = server.dynamic.account_by_name(account)
    if acc is None:
        raise NotFound("no such account")
    out = [AddressView(acc.full_name, a.display()) for a in acc.addresses]
    mine = {a.key() for a in acc.addresses}
    aliases: dict[str, AliasConfig] = server.dynamic.current.aliases
    for alias in aliases.values():
        if alias.allow_msg_from and any(m.key() in mine for m in alias.members):
            out.append(AddressView("", alias.address.display()))
    return out


def _choice_for(choices: list[AddressView], addresses: list[str]) -> AddressView | None:
    by_key = {_key(c.address): c for c in choices}
    for address in addresses:
        found = by_key.get(_key(address))
        if found is not None:
            return found
    return None


def _key(address: str) -> str:
    try:
        return Address.parse(address).key()
    except AddressError:
        return address.lower()


# --- uploads --------------------------------------------------------------------------------


class Upload(msgspec.Struct, frozen=True):
    token: str
    filename: str
    content_type: str
    size: int


class Uploads:
    """Uploaded attachment files of one server (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, account: str) -> Path:
        path = self.root / account
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        return path

    def put(self, account: str, filename: str, content_type: str, data: bytes, limit: int) -> Upload:
        """Stores the file (runs in a pool thread). Raises LimitExceeded over `limit` bytes or
        too many pending uploads, InvalidInput for a bad name or type."""
        if len(data) > limit:
            raise LimitExceeded(f"attachments are limited to {limit} bytes")
        filename = filename.replace("\r", "").replace("\n", "").replace("/", "_").replace("\\", "_")[:255] or "file"
        if not re.fullmatch(r"[\w.+-]{1,127}/[\w.+-]{1,127}", content_type):
            content_type = "application/octet-stream"
        folder = self._dir(account)
        self.expire(folder)
        if sum(1 for _ in folder.glob("*.data")) >= MAX_UPLOADS:
            raise LimitExceeded("too many attachments waiting to be sent")
        upload = Upload(secrets.token_urlsafe(24), filename, content_type, len(data))
        for suffix, content in ((".data", data), (".json", msgspec.json.encode(upload))):
            fd = os.open(folder / (upload.token + suffix), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        return upload

    def get(self, account: str, token: str) -> tuple[Upload, bytes]:
        """The upload and its data. Raises NotFound."""
        if not _TOKEN.fullmatch(token):
            raise NotFound("no such upload")
        folder = self._dir(account)
        try:
            upload = msgspec.json.decode((folder / (token + ".json")).read_bytes(), type=Upload)
            return upload, (folder / (token + ".data")).read_bytes()
        except (OSError, msgspec.DecodeError):
            raise NotFound("no such upload (expired?)") from None

    def remove(self, account: str, token: str) -> None:
        if _TOKEN.fullmatch(token):
            for suffix in (".data", ".json"):
                (self._dir(account) / (token + suffix)).unlink(missing_ok=True)

    @staticmethod
    def expire(folder: Path, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - UPLOAD_TTL
        for path in folder.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass


def uploads(server: Server) -> Uploads:
    return Uploads(server.config.data_dir / "webmail-uploads")


# --- the form -------------------------------------------------------------------------------


class AttachmentRef(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded file (`upload` token) or a part of a stored message (`message_id`, `path`)."""

    upload: str = ""
    message_id: int = 0
    path: str = ""
    filename: str = ""  # shown in the form; the file's own name is used when sending
    content_type: str = ""
    size: int = 0


class ComposeForm(msgspec.Struct, kw_only=True):
    """What the compose screen holds. `reply_to_id`: the stored message answered (its
    Message-ID and References make this one's In-Reply-To/References); `forward_ids`:
    messages attached whole (forward as attachment); `forwarded_id`: forwarded inline;
    `in_reply_to`/`references`: of a reopened draft that answered a message; `draft_id`: the
    draft this form was saved as (replaced by the next save, removed when sent)."""

    from_: str = msgspec.field(default="", name="from")
    to: list[Mailbox] = []
    cc: list[Mailbox] = []
    bcc: list[Mailbox] = []
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: list[AttachmentRef] = []
    reply_to_id: int = 0
    forward_ids: list[int] = []
    forwarded_id: int = 0
    in_reply_to: str = ""
    references: list[str] = []
    draft_id: int = 0
    requiretls: bool = False
    send_at: int = 0  # send later: Unix time of the first delivery attempt of remote copies; 0: now


class Sent(msgspec.Struct, frozen=True):
    message_id: str  # the Message-ID, with <>
    sent_copy: int  # store id of the copy in Sent (0 when there is no Sent mailbox)
    queued: bool  # remote recipients: handed to the outgoing queue


def _sender(wm: Webmail, form: ComposeForm) -> Mailbox:
    choices = from_choices(wm.server, wm.account)
    chosen = _choice_for(choices, [form.from_]) if form.from_ else choices[0]
    if chosen is None:
        raise InvalidInput(f"you cannot send as {form.from_}", field="from")
    return Mailbox(address=chosen.address, name=chosen.name)


async def _reply_fields(wm: Webmail, form: ComposeForm) -> ReplyTo | None:
    if form.reply_to_id:
        view = await _view(wm, form.reply_to_id)
        if view.message_id:
            return ReplyTo(view.message_id, view.references or ([view.in_reply_to] if view.in_reply_to else []))
        return None
    if form.in_reply_to:
        return ReplyTo(form.in_reply_to, form.references)
    return None


async def _attachments(wm: Webmail, form: ComposeForm) -> list[Attachment]:
    out: list[Attachment] = []
    total = 0
    limit = wm.server.config.limits.max_message_size
    store_uploads = uploads(wm.server)
    for ref in form.attachments:
        if ref.upload:
            upload, data = await wm.in_thread(store_uploads.get, wm.account, ref.upload)
            out.append(Attachment(upload.filename, data, upload.content_type))
        elif ref.message_id:
            _, raw, tree = await _content(wm, ref.message_id)
            found = part_content(raw, tree, ref.path)
            if found is None:
                raise NotFound("an attachment's part no longer exists")
            data, content_type, filename = found
            out.append(Attachment(filename, data, content_type.split(";")[0]))
        else:
            raise InvalidInput("an attachment names neither an upload nor a part", field="attachments")
        total += len(out[-1].data)
        if total > limit:
            raise LimitExceeded(f"attachments are limited to {limit} bytes")
    for forwarded in form.forward_ids[:20]:
        m, raw, _ = await _content(wm, forwarded)
        name = re.sub(r"[^\w .,()-]+", "_", m.summary.subject or "message")[:100] + ".eml"
        out.append(Attachment(name, raw, "message/rfc822"))
    return out


async def _draft(wm: Webmail, form: ComposeForm) -> Draft:
    return Draft(
        from_=_sender(wm, form),
        to=form.to,
        cc=form.cc,
        bcc=form.bcc,
        subject=form.subject,
        text=form.text,
        html=form.html,
        attachments=await _attachments(wm, form),
        in_reply_to=await _reply_fields(wm, form),
    )


async def _store_id(store: si.AccountStore, appended: si.AppendResult) -> int:
    found = await store.summaries(appended.mailbox_id, [appended.uid])
    return found[0].id if found else 0


async def _remove_message(wm: Webmail, message_id: int) -> None:
    found = await wm.store.find_message(message_id)
    if found is not None:
        await mailops.delete_messages(wm.mail(), found.mailbox_id, [found.uid])


async def send_message(wm: Webmail, form: ComposeForm, client_ip: str = "", via: str = "HTTP") -> Sent:
    """Sends the form as the account. Raises InvalidInput (addresses, From:), SendAsDenied,
    NotFound (an attachment gone), LimitExceeded, and what submission raises."""
    release_at = send_later_time(form.send_at)
    draft = await _draft(wm, form)
    composed = compose(draft)
    options = SendOptions(
        requiretls=True if form.requiretls else None,
        release_at=release_at,
        client_ip=client_ip,
        via=via,
        save_sent=release_at is not None,  # sent later: the queue stores the Sent copy then
    )
    result = (await composeops.send_message(wm.server, wm.account, None, draft, options, composed=composed)).delivery
    store = wm.store
    sent_copy = 0
    try:
        sent = await special_mailbox(wm, "\\Sent")
    except NotFound:
        sent = None
    if sent is not None and release_at is None:
        appended = await store.append(sent.name, composed.data, ["\\Seen"], origin=wm.origin)
        sent_copy = await _store_id(store, appended)
    await _after_send(wm, form)
    people = [(m.name, m.address) for m in (*form.to, *form.cc, *form.bcc)]
    await note_correspondents(store, people)
    return Sent(composed.message_id, sent_copy, result.queued is not None)


def send_later_time(send_at: int, now: float | None = None) -> datetime.datetime | None:
    """The release time of a form's `send_at`: None for 0 (now). Raises InvalidInput for a
    time not in the future or more than 60 days ahead (the webapi's FutureRelease limit)."""
    if not send_at:
        return None
    now = time.time() if now is None else now
    if send_at <= now:
        raise InvalidInput("send later: the time is in the past", field="send_at")
    if send_at > now + MAX_RELEASE_DELAY:
        raise InvalidInput("send later: at most 60 days ahead", field="send_at")
    return datetime.datetime.fromtimestamp(send_at, datetime.UTC)


async def _after_send(wm: Webmail, form: ComposeForm) -> None:
    marks = [(form.reply_to_id, "\\Answered"), (form.forwarded_id, "$Forwarded")]
    marks += [(i, "$Forwarded") for i in form.forward_ids]
    for message_id, flag in marks:
        if message_id:
            found = await wm.store.find_message(message_id)
            if found is not None:
                await mailops.add_flags(wm.mail(), found.mailbox_id, [found.uid], [flag])
    for ref in form.attachments:
        if ref.upload:
            uploads(wm.server).remove(wm.account, ref.upload)
    if form.draft_id:
        await _remove_message(wm, form.draft_id)


# The compose options a draft keeps (module docstring).
SEND_AT_FIELD = "X-Mailsrv-Send-At"
REQUIRETLS_FIELD = "X-Mailsrv-Require-TLS"


def _option_fields(form: ComposeForm) -> list[tuple[str, str]]:
    fields = []
    if form.send_at > 0:
        fields.append((SEND_AT_FIELD, str(int(form.send_at))))
    if form.requiretls:
        fields.append((REQUIRETLS_FIELD, "yes"))
    return fields


def _restore_options(form: ComposeForm, header: bytes, now: float | None = None) -> None:
    """The options `_option_fields` kept, back into the form (a field that does not parse is
    ignored, and so is a send time that has passed: the draft is then sent when sent)."""
    fields = parse_headers(header)
    send_at = (header_values(fields, SEND_AT_FIELD.lower()) or [""])[0].strip()
    if send_at.isdigit() and len(send_at) <= 12 and int(send_at) > (time.time() if now is None else now):
        form.send_at = int(send_at)
    requiretls = (header_values(fields, REQUIRETLS_FIELD.lower()) or [""])[0].strip().lower()
    form.requiretls = requiretls == "yes"


async def save_draft(wm: Webmail, form: ComposeForm) -> int:
    """Stores the form in Drafts (replacing `form.draft_id`) with its options; returns the new
    draft's id."""
    draft = await _draft(wm, form)
    draft.headers = _option_fields(form)
    composed = compose(draft, for_drafts=True)
    drafts = await special_mailbox(wm, "\\Drafts")
    appended = await wm.store.append(drafts.name, composed.data, ["\\Draft", "\\Seen"], origin=wm.origin)
    new_id = await _store_id(wm.store, appended)
    if form.draft_id and form.draft_id != new_id:
        await _remove_message(wm, form.draft_id)
    return new_id


async def _view(wm: Webmail, message_id: int) -> MessageView:
    m, raw, tree = await _content(wm, message_id)
    facts = ViewFacts(m.id, m.mailbox_id, m.uid, m.flags, m.size, m.internal_date, m.summary.date)
    return await wm.in_thread(build_view, raw, tree, facts, wm.server.config.hostname.ascii, lambda _: False)


def _mailboxes(addresses: list[AddressView]) -> list[Mailbox]:
    return [Mailbox(address=a.address, name=a.name) for a in addresses if a.address]


def _plain(view: MessageView) -> str:
    out = []
    for block in view.text:
        prefix = "> " * block.quote
        out.append("\n".join(prefix + line for line in block.text.split("\n")))
    return "\n".join(out)


async def open_draft(wm: Webmail, message_id: int) -> ComposeForm:
    """The form of a stored draft, to go on editing it. Raises NotFound."""
    view = await _view(wm, message_id)
    _, raw, tree = await _content(wm, message_id)
    parts = layout(tree)
    text = "\n".join(_decoded(raw, p) for _, p in parts.texts)
    html = "\n".join(_decoded(raw, p) for _, p in parts.htmls)
    attachments = [
        AttachmentRef(message_id=message_id, path=a.path, filename=a.filename, content_type=a.content_type, size=a.size)
        for a in view.attachments
    ]
    form = ComposeForm(
        from_=view.from_[0].address if view.from_ else "",
        to=_mailboxes(view.to),
        cc=_mailboxes(view.cc),
        bcc=_mailboxes(view.bcc),
        subject=view.subject,
        text=text,
        html=html,
        attachments=attachments,
        in_reply_to=view.in_reply_to,
        references=view.references,
        draft_id=message_id,
    )
    _restore_options(form, raw[tree.header_start : tree.body_start])
    return form


def _decoded(raw: bytes, part: Part) -> str:
    return body_text(part, raw[part.body_start : part.body_end])


ReplyMode = Literal["reply", "all", "forward", "forward-attached"]


async def template(wm: Webmail, message_id: int, mode: ReplyMode) -> ComposeForm:
    """The compose form to answer or forward a stored message: recipients, From: (the
    address it was sent to when we may send as it), subject, quoted text per the quoting
    setting with the signature, and the reply/forward references."""
    view = await _view(wm, message_id)
    settings = await get_settings(wm.store)
    choices = from_choices(wm.server, wm.account)
    m = await find(wm, message_id)
    _, raw, tree = await _content(wm, message_id)
    delivered_to = _delivered_to(raw[tree.header_start : tree.body_start])
    received_by = [a.address for a in (*view.to, *view.cc)] + delivered_to
    chosen = _choice_for(choices, received_by) or choices[0]
    mine = {_key(c.address) for c in choices}
    signature = f"\n-- \n{settings.signature}" if settings.signature else ""
    form = ComposeForm(from_=chosen.address)
    when = email.utils.formatdate(view.date, localtime=False)
    sender = view.from_[0] if view.from_ else AddressView("", "")
    who = f"{sender.name} <{sender.address}>" if sender.name else sender.address
    if mode in ("reply", "all"):
        targets = view.reply_to or view.from_
        to = [a for a in targets if _key(a.address) not in mine] or list(targets)
        cc: list[AddressView] = []
        if mode == "all":
            seen = {_key(a.address) for a in to}
            for a in (*view.to, *view.cc):
                if _key(a.address) not in mine and _key(a.address) not in seen:
                    seen.add(_key(a.address))
                    cc.append(a)
        form.to, form.cc = _mailboxes(to), _mailboxes(cc)
        form.subject = reply_subject(view.subject)
        quoted = "\n".join("> " + line if line else ">" for line in _plain(view).split("\n"))
        intro = f"On {when}, {who} wrote:\n"
        if settings.quoting == "top":
            form.text = f"\n\n{signature}\n\n{intro}{quoted}\n"
        else:
            form.text = f"{intro}{quoted}\n\n{signature}"
        form.reply_to_id = message_id
        return form
    form.subject = view.subject if re.match(r"(?i)\s*fwd?\s*:", view.subject) else f"Fwd: {view.subject}"
    if mode == "forward-attached":
        form.forward_ids = [message_id]
        form.text = f"\n\n{signature}"
        return form
    header = [
        "---------- Forwarded message ----------",
        f"From: {who}",
        f"Date: {when}",
        f"Subject: {view.subject}",
    ]
    if view.to:
        header.append("To: " + ", ".join(a.address for a in view.to))
    form.text = f"\n\n{signature}\n\n" + "\n".join(header) + "\n\n" + _plain(view) + "\n"
    form.attachments = [
        AttachmentRef(message_id=message_id, path=a.path, filename=a.filename, content_type=a.content_type, size=a.size)
        for a in view.attachments
        if not a.inline
    ]
    form.forwarded_id = m.id
    return form


def _delivered_to(header: bytes) -> list[str]:
    values = header_values(parse_headers(header), "delivered-to")
    return [email.utils.parseaddr(decode_text(v) or "")[1] for v in values[:10]]
