"""APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), literal8
(RFC 3516) and ``UTF8 (literal)`` (RFC 6855).

``APPEND mailbox 1*(SP [flags SP] [date-time SP] data)``, where data is a literal, a
literal8, ``UTF8 (literal8)`` or ``CATENATE (part ...)`` with parts ``TEXT literal`` and
``URL url`` (`imapurl`). The whole command is parsed and every message assembled before
anything is stored; the store then adds all of them in one commit (`append_many`), so a
MULTIAPPEND is all or none (RFC 3502 §6.3.11) and answers one ``APPENDUID uidvalidity
uid-set`` (RFC 4315 §3).

Bounds: at most `MAX_MESSAGES` messages and `MAX_CATENATE_PARTS` parts per message; every
assembled message at most the APPENDLIMIT (``NO [TOOBIG]``), and the whole batch too (the
command assembler already holds a command's literals to that). A URL that is malformed,
uses URLAUTH, or names a mailbox, message or part that does not exist in this account is
``NO [BADURL url]`` (RFC 4469 §5).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailsrv.imapserver import imapurl
from mailsrv.imapserver.commands import AUTHENTICATED_STATES, Command, Reply, command
from mailsrv.imapserver.errors import CommandError, SyntaxError_, UserError, from_store_error
from mailsrv.imapserver.reader import Reader, normalise_mailbox_name
from mailsrv.imapserver.responses import uid_set
from mailsrv.message.source import MessageSource
from mailsrv.store.interfaces import NewMessage, StoreError

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

MAX_MESSAGES = 1000  # per MULTIAPPEND command
MAX_CATENATE_PARTS = 100  # per CATENATE message


@dataclass
class _Text:
    data: bytes | MessageSource  # a large literal stays in its spool file


@dataclass
class _Url:
    url: str


@dataclass
class AppendMessage:
    flags: list[str]
    date: datetime.datetime | None
    parts: list[_Text | _Url] = field(default_factory=list)  # one _Text unless CATENATE


def parse_append(r: Reader) -> tuple[str, list[AppendMessage]]:
    """The mailbox and the messages of an APPEND command (after the command name)."""
    name = r.mailbox()
    messages: list[AppendMessage] = []
    while True:
        r.sp()
        while r.take(b" "):
            pass  # imapclient's multiappend sends two spaces between literals; be liberal
        if len(messages) == MAX_MESSAGES:
            raise UserError(f"at most {MAX_MESSAGES} messages per APPEND", "LIMIT")
        messages.append(_append_message(r))
        if r.at_end():
            return name, messages


def _append_message(r: Reader) -> AppendMessage:
    flags: list[str] = []
    date = None
    if r.peek() == b"(":
        flags = r.flag_list()
        r.sp()
    if r.peek() == b'"':
        date = r.date_time()
        r.sp()
    message = AppendMessage(flags, date)
    if r.take(b"UTF8 ("):
        message.parts.append(_Text(r.message_literal()))
        r.expect(b")")
    elif r.take(b"CATENATE ("):
        while True:
            if len(message.parts) == MAX_CATENATE_PARTS:
                raise UserError(f"at most {MAX_CATENATE_PARTS} CATENATE parts", "LIMIT")
            if r.take(b"TEXT "):
                if r.peek() not in (b"{", b"~"):
                    raise SyntaxError_("expected a literal after TEXT")
                message.parts.append(_Text(r.message_literal()))
            elif r.take(b"URL "):
                message.parts.append(_Url(r.astring_bytes().decode("utf-8", "replace")))
            else:
                raise r.error("expected TEXT or URL")
            if r.take(b")"):
                break
            r.sp()
    else:
        if r.peek() not in (b"{", b"~"):
            raise SyntaxError_("expected the message as a literal")
        message.parts.append(_Text(r.message_literal()))
    return message


@command("APPEND", AUTHENTICATED_STATES)
async def append(session: Session, cmd: Command) -> Reply | None:
    name, messages = parse_append(cmd.reader)
    cmd.reader.end()
    limit = session.server.config.limits.max_message_size
    batch: list[NewMessage] = []
    total = 0
    for message in messages:
        data = await _assemble(session, message, limit)
        total += len(data)
        if total > limit:
            raise UserError("messages too large together: send fewer in one APPEND", "TOOBIG")
        batch.append(NewMessage(data, tuple(message.flags), message.date))
    try:
        results = await session.store.append_many(name, batch, origin=session)
    except StoreError as e:
        raise from_store_error(e, trycreate=True) from None
    uids = uid_set([r.uid for r in results]).decode()
    return Reply("APPEND completed", f"APPENDUID {results[0].uidvalidity} {uids}")


async def _assemble(session: Session, message: AppendMessage, limit: int) -> bytes | MessageSource:
    """The message's bytes: its literal, or its CATENATE parts joined (RFC 4469 §3). When a
    part was spooled to a file, a `MessageSource` over the parts, which the store copies
    without reading the spooled ones into memory."""
    out: list[bytes | MessageSource] = []
    size = 0
    for part in message.parts:
        data = part.data if isinstance(part, _Text) else await _url_data(session, part.url)
        size += len(data)
        if size > limit:
            raise UserError("message too large", "TOOBIG")
        out.append(data)
    if all(isinstance(d, bytes) for d in out):
        return b"".join(d for d in out if isinstance(d, bytes))
    if len(out) == 1 and isinstance(out[0], MessageSource):
        return out[0]
    return MessageSource([s for d in out for s in ((d,) if isinstance(d, bytes) else d.segments)])


def _bad_url(url: str, why: str) -> CommandError:
    return UserError(f"{why}: nothing appended", f"BADURL {imapurl.display(url)}")


async def _url_data(session: Session, url: str) -> bytes:
    """The bytes a CATENATE URL names, read from this account's store."""
    from mailsrv.imapserver.fetch import parse_fetch, section_bytes

    try:
        ref = imapurl.parse(url)
    except imapurl.BadURL as e:
        raise _bad_url(url, str(e)) from None
    if ref.host is not None and not _is_this_server(session, ref.host):
        raise _bad_url(url, "the URL names another server")
    if ref.user is not None and not _is_this_account(session, ref.user):
        raise _bad_url(url, "the URL names another account")
    store = session.store
    try:
        if ref.mailbox is not None:
            box = store.mailbox(normalise_mailbox_name(ref.mailbox))
        elif session.selected is not None:
            box = store.mailbox_by_id(session.selected.mailbox_id)
        else:
            raise _bad_url(url, "a relative URL needs a selected mailbox")
    except StoreError:
        raise _bad_url(url, "no such mailbox") from None
    if ref.uidvalidity is not None and ref.uidvalidity != box.uidvalidity:
        raise _bad_url(url, "UIDVALIDITY differs")
    info = store.message(box.id, ref.uid)
    if info is None:
        raise _bad_url(url, "no such message")
    try:
        raw = await store.read_async(info.message_id)
    except (OSError, StoreError):
        raise _bad_url(url, "the message is gone") from None
    data: bytes | None = raw
    if ref.section:
        try:
            request = parse_fetch(Reader(b"BODY.PEEK[" + ref.section.encode("utf-8") + b"]"))
        except CommandError:
            raise _bad_url(url, "bad section") from None
        section = request.items[0].section
        assert section is not None
        data = section_bytes(raw, store.part_tree(info.message_id), section)
        if data is None:
            raise _bad_url(url, "no such part")
    assert data is not None
    if ref.partial is not None:
        offset, length = ref.partial
        data = data[offset:] if length is None else data[offset : offset + length]
    return data


def _is_this_server(session: Session, host: str) -> bool:
    host = host.strip("[]").lower()
    names = {str(session.server.config.hostname).lower(), "localhost", "127.0.0.1", "::1"}
    return host in names


def _is_this_account(session: Session, user: str) -> bool:
    identity = session.identity
    names = {(session.account or "").lower()}
    if identity is not None and identity.address is not None:
        names.add(identity.address.display().lower())
    return user.lower() in names
