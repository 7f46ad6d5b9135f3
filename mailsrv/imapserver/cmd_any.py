"""Commands valid in any state, and connection-level commands: CAPABILITY, NOOP, LOGOUT,
ID, ENABLE, NAMESPACE, STARTTLS, COMPRESS, IDLE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imapserver import responses
from mailsrv.imapserver.commandreader import CommandRefused
from mailsrv.imapserver.commands import (
    ANY_STATE,
    AUTHENTICATED_STATES,
    NOT_AUTHENTICATED_ONLY,
    Command,
    Reply,
    command,
)
from mailsrv.imapserver.errors import SyntaxError_, UserError

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

# RFC 5161 / RFC 9051 §6.3.1: what ENABLE can turn on. QRESYNC implies CONDSTORE
# (RFC 7162 §3.2.3).
ENABLEABLE = ("CONDSTORE", "QRESYNC", "IMAP4REV2", "UTF8=ACCEPT")


@command("CAPABILITY", ANY_STATE)
async def capability(session: Session, cmd: Command) -> Reply | None:
    cmd.reader.end()
    session.write_untagged(b"CAPABILITY", " ".join(session.capabilities()).encode("ascii"))
    return None


@command("NOOP", ANY_STATE)
async def noop(session: Session, cmd: Command) -> Reply | None:
    # The dispatcher flushes queued mailbox updates before the tagged OK (RFC 9051 §6.1.2).
    cmd.reader.end()
    return None


@command("CHECK", frozenset({"selected"}))
async def check(session: Session, cmd: Command) -> Reply | None:
    # IMAP4rev1 only (RFC 3501 §6.4.1); our store is always consistent, so it is a NOOP.
    cmd.reader.end()
    return None


@command("LOGOUT", ANY_STATE)
async def logout(session: Session, cmd: Command) -> Reply | None:
    cmd.reader.end()
    session.say_bye(b"logging out")
    session.after_reply.append(session.close)
    return None


@command("ID", ANY_STATE)
async def id_(session: Session, cmd: Command) -> Reply | None:
    """RFC 2971: the client's fields are logged (bounded), ours are name and version."""
    r = cmd.reader
    fields: list[tuple[str, str | None]] = []
    if not r.take(b"NIL"):

        def pair() -> tuple[str, str | None]:
            key = r.string()
            r.sp()
            return key, r.nstring()

        fields = r.paren_list(pair)
    r.end()
    if len(fields) > 30:
        raise SyntaxError_("too many ID fields")
    if fields:
        session.log.info("client id {fields}", fields={k[:30]: (v or "")[:100] for k, v in fields})
    session.write_untagged(
        b"ID",
        responses.paren([b'"name"', b'"mailsrv"', b'"vendor"', b'"mailsrv"']),
    )
    return None


@command("ENABLE", AUTHENTICATED_STATES)
async def enable(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    wanted = [r.keyword()]
    while not r.at_end():
        r.sp()
        wanted.append(r.keyword())
    newly: list[str] = []
    for cap in wanted:
        if cap not in ENABLEABLE or cap in session.enabled:
            continue
        if cap == "QRESYNC" and "CONDSTORE" not in session.enabled:
            session.enabled.add("CONDSTORE")
            newly.append("CONDSTORE")
        session.enabled.add(cap)
        newly.append(cap)
    spelled = {"IMAP4REV2": "IMAP4rev2"}
    session.write_untagged(b"ENABLED", *[spelled.get(c, c).encode("ascii") for c in newly])
    return None


@command("NAMESPACE", AUTHENTICATED_STATES)
async def namespace(session: Session, cmd: Command) -> Reply | None:
    # RFC 2342 / RFC 9051 §6.3.10: one personal namespace, no others.
    cmd.reader.end()
    session.write_untagged(b"NAMESPACE", b'(("" "/")) NIL NIL')
    return None


@command("STARTTLS", NOT_AUTHENTICATED_ONLY)
async def starttls(session: Session, cmd: Command) -> Reply | None:
    cmd.reader.end()
    if session.tls_active:
        raise SyntaxError_("TLS is already active")
    if session.server.tls is None or session.listener.tls != "starttls":
        raise SyntaxError_("STARTTLS not offered here")
    session.after_reply.append(session.start_tls)
    return Reply("begin TLS negotiation now")


@command("COMPRESS", AUTHENTICATED_STATES)
async def compress(session: Session, cmd: Command) -> Reply | None:
    mechanism = cmd.reader.keyword()
    cmd.reader.end()
    if mechanism != "DEFLATE":
        raise SyntaxError_("only DEFLATE is supported")
    if "COMPRESS=DEFLATE" not in session.capabilities():
        raise UserError("compression already active", "COMPRESSIONACTIVE")
    session.after_reply.append(session.start_compression)
    return Reply("DEFLATE active")


@command("IDLE", AUTHENTICATED_STATES)
async def idle(session: Session, cmd: Command) -> Reply | None:
    """RFC 2177 / RFC 9051 §6.3.13: changes are written as they happen until DONE."""
    cmd.reader.end()
    session.write_continuation(b"idling")
    session.idling = True
    try:
        session.flush_updates(allow_expunge=True)
        event = await session.read_line()
    finally:
        session.idling = False
    if isinstance(event, CommandRefused) or event.data.upper() != b"DONE":
        raise SyntaxError_("expected DONE")
    return Reply("IDLE terminated")
