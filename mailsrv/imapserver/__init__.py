"""IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server.

Decision: our own protocol on Twisted's `Protocol`, not `twisted.mail.imap4`. Twisted's
IMAP4Server advertises only IDLE and NAMESPACE beyond rev1, accepted AUTHENTICATE over
cleartext while advertising LOGINDISABLED, and its AUTHENTICATE seam never sees the
transport (no EXTERNAL, no channel binding). We reuse Twisted's transports, TLS and
`startTLS`, `TimeoutMixin` and the logger; nothing of its imap4 module.

Modules:
  errors.py        SyntaxError_/ParseError (→ BAD), UserError(code) (→ NO [code]), ServerError (→ NO, logged)
  reader.py        recursive-descent Reader over one complete command (literals spliced in)
  responses.py     building responses: quoting, literals, mailbox names, flag lists
  mutf7.py         modified UTF-7 for rev1 mailbox names
  commandreader.py byte-level assembly of commands: lines, literals, limits, continuations
  session.py       the Protocol: states, dispatch, STARTTLS, COMPRESS, IDLE, timeouts, update queue
  factory.py       SessionFactory: per-address connection limit, BYE to every session at shutdown
  selected.py      SelectedMailbox: UID↔MSN map and the queue of changes not yet told to the client
  commands.py      the command table (`@command` decorator, Command, Reply); registry.py lists modules
  cmd_*.py         handlers: any state, authentication, mailbox commands, LIST/LSUB, CLOSE/UNSELECT,
                   and (selected-state helper) cmd_messages/fetch/search with sequence/bodystructure
  listmatch.py     LIST wildcards matched as an NFA: O(name × pattern), no regex backtracking

Invariants every handler keeps:

- One command at a time per connection. The session stops feeding input to the command
  assembler while a command runs (its handler may be asynchronous: store fsync, LDAP,
  password hashing); pipelined input stays buffered and is read only after the tagged
  reply has been written, so replies never overtake each other. IDLE and AUTHENTICATE
  read their continuation lines through the same assembler.
- Untagged EXPUNGE/VANISHED only where RFC 9051 §7.5.1 allows: never while no command is
  in progress (except during IDLE, RFC 2177), never in the answer to FETCH, STORE or
  SEARCH (non-UID forms) — those would renumber messages under the client. Other queued
  updates (EXISTS, FETCH FLAGS) may go out in any command's answer. Changes are queued by
  the store's change listener and written by `Session.flush_updates(allow_expunge)`, which
  the dispatcher calls before every tagged reply; IDLE flushes as changes arrive.
- The session's UID→MSN map (`SelectedMailbox.uids`) is what the client believes: a
  message expunged by another session keeps its number here until the EXPUNGE/VANISHED
  for it has been written.
- Changes a session makes itself (the store's `origin` argument is the session): flag
  changes and expunges are answered by the handler that made them (STORE writes its own
  FETCH, EXPUNGE/MOVE call `Session.announce_expunged`); additions are queued like anyone
  else's, so an APPEND or COPY into the selected mailbox yields EXISTS.
- Mailbox names: on input, `Reader.mailbox()` decodes UTF-8 (IMAP4rev2 or UTF8=ACCEPT
  enabled) or modified UTF-7 (rev1), NFC-normalises, and spells INBOX (any case, also as
  the first hierarchy level) as "INBOX". The hierarchy separator is "/" in the protocol
  and in the store. On output, `responses.mailbox()` encodes per the session mode.
- Limits: a command line is at most `imap_max_line_length`; a literal at most that too,
  except APPEND's after login (`max_message_size`, advertised as APPENDLIMIT). Too large
  synchronising literals are refused before the client sends them, non-synchronising ones
  read and thrown away, both answered NO/BAD [TOOBIG] with the connection kept. While a
  command runs, more than 1 MiB of pipelined input pauses reading from the socket.
- STARTTLS: plaintext pipelined after STARTTLS is never executed: the session drops it and
  the connection (CVE-2011-0411 class). LOGIN and plaintext SASL are refused before TLS
  when `login_disabled_without_tls` (LOGINDISABLED, NO [PRIVACYREQUIRED]).
- Peers: at most `max_connections_per_ip` sessions per address and listener; 10 BADs
  before login (or 50 in a row after) end the connection (cross-protocol junk); inactivity
  ends it after `unauthenticated_timeout` before login, `idle_timeout` (30 min) after;
  every session gets ``* BYE`` when the daemon stops.
- Modseqs come from the store: every change to a message takes its mailbox's next modseq
  (RFC 7162 §3.1). The session never invents one; HIGHESTMODSEQ is read from MailboxInfo.
- The command loop is the one place that turns errors into BAD/NO; a peer never sees a
  traceback, and unexpected exceptions are logged with the connection id.

API for selected-state command handlers (FETCH/SEARCH/STORE/COPY/MOVE/EXPUNGE modules).
Register a handler with ``@command("FETCH", SELECTED_ONLY, uid=True)`` (commands.py) and
add its module to `registry.HANDLER_MODULES`. Parse with ``cmd.reader`` (reader.py: atoms,
numbers, strings, flag lists, dates, paren_list), build output with responses.py, raise
errors.py kinds (`from_store_error(exc, trycreate=True)` maps store exceptions), and use:

  session.store            the account's AccountStore
  session.selected         SelectedMailbox | None: .mailbox_id, .name, .uidvalidity,
                           .readonly, .uids (MSN-1 → UID, ascending), .msn(uid) -> int|None,
                           .uid(msn) -> int, .count, .recent (set of UIDs, rev1 only)
  session.enabled          set of ENABLEd extensions ("CONDSTORE", "QRESYNC", "IMAP4REV2",
                           "UTF8=ACCEPT"); session.condstore / .qresync / .rev2 / .utf8
  session.enable_condstore()  implicit CONDSTORE enabling (RFC 7162 §3.1: FETCH/SEARCH
                           MODSEQ, STORE UNCHANGEDSINCE) — writes HIGHESTMODSEQ OK once
  session.saved_search     list[int] UIDs saved by SEARCH RETURN (SAVE) (RFC 5182), reset on SELECT
  session.write_untagged(*parts)  ``* part part`` CRLF (parts from responses.py)
  session.write(data)      raw bytes
  session.announce_expunged(uids)  for own expunges: writes EXPUNGE (or VANISHED under
                           QRESYNC) and removes them from the map
  session.flush_updates(allow_expunge)  the dispatcher already calls it; call it only to
                           flush earlier in a response
  session.log              logger adding connection id, peer and account (info/warn/failure)
  session.flags_fetch_items(message)  ``(UID n FLAGS (...) [MODSEQ (m)])`` as unsolicited
                           FETCH data (adds \\Recent for rev1)
  uid_set(uids)            responses.uid_set (also importable from session): compact UID sets for
                           VANISHED / COPYUID output
  origin=session           pass the session as `origin` to store mutations, so its own
                           flag changes and expunges are not queued back to it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from twisted.internet.interfaces import IProtocolFactory

    from mailsrv.config.types import ListenerConfig
    from mailsrv.server import Server


def make_factory(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    """The factory for one IMAP listener. For an implicit-TLS listener the daemon wraps it
    in TLS; the sessions then see `listener.tls == "implicit"` and offer no STARTTLS."""
    from mailsrv.imapserver.factory import SessionFactory

    # zope interfaces are not classes to mypy; SessionFactory is a twisted Factory.
    return cast("IProtocolFactory", SessionFactory(server, listener))
