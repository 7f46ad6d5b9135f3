"""LIST (RFC 9051 §6.3.9 with RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819
LIST-STATUS, RFC 3348 CHILDREN) and LSUB (IMAP4rev1, RFC 3501 §6.3.9).

Patterns are matched with `listmatch.Pattern` (linear, no backtracking). Attributes always
include \\HasChildren or \\HasNoChildren and the special-use attribute of the mailbox;
\\Subscribed when asked for; \\NonExistent for subscribed names that do not exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.task import deferLater

from mailsrv.imapserver import responses
from mailsrv.imapserver.cmd_mailbox import mailbox_out, status_items, status_response
from mailsrv.imapserver.commands import AUTHENTICATED_STATES, Command, Reply, command
from mailsrv.imapserver.errors import SyntaxError_
from mailsrv.imapserver.listmatch import MAX_PATTERN_LENGTH, MAX_PATTERNS, SEPARATOR, Pattern
from mailsrv.store.interfaces import MailboxInfo

if TYPE_CHECKING:
    from mailsrv.imapserver.session import Session

# Longest stretch of pattern matching between two turns of the reactor.
SLICE_SECONDS = 0.01
SLICE_CHECK = 256


@dataclass
class _Entry:
    name: str
    info: MailboxInfo | None  # None: not an existing mailbox (subscribed only)
    subscribed: bool
    has_children: bool = False
    child_subscribed: bool = False
    child_special: bool = False


def _entries(session: Session) -> dict[str, _Entry]:
    store = session.store
    subs = set(store.subscriptions())
    entries: dict[str, _Entry] = {}
    for info in store.mailboxes():
        entries[info.name] = _Entry(info.name, info, info.subscribed or info.name in subs)
    for name in subs:
        if name not in entries:
            entries[name] = _Entry(name, None, True)
    # Levels of hierarchy that are not mailboxes themselves (a parent deleted while its
    # children stayed) are listed \NonExistent \HasChildren (RFC 9051 §6.3.9).
    for name in [n for n, e in entries.items() if e.info is not None]:
        parts = name.split(SEPARATOR)
        for i in range(1, len(parts)):
            level = SEPARATOR.join(parts[:i])
            if level not in entries:
                entries[level] = _Entry(level, None, False)
    for name, entry in entries.items():
        # Mark every ancestor: it has children, and maybe subscribed/special-use ones.
        parts = name.split(SEPARATOR)
        for i in range(1, len(parts)):
            parent = entries.get(SEPARATOR.join(parts[:i]))
            if parent is None:
                continue
            if entry.info is not None:
                parent.has_children = True
                if entry.info.special_use:
                    parent.child_special = True
            if entry.subscribed:
                parent.child_subscribed = True
    return entries


@command("LIST", AUTHENTICATED_STATES)
async def list_(session: Session, cmd: Command) -> Reply | None:
    r = cmd.reader
    selection: set[str] = set()
    if r.peek() == b"(":
        selection = set(r.paren_list(r.keyword))
        r.sp()
    reference = r.mailbox()
    r.sp()
    if r.peek() == b"(":
        patterns = r.paren_list(r.list_mailbox, allow_empty=False)
    else:
        patterns = [r.list_mailbox()]
    returns: set[str] = set()
    status: list[str] | None = None
    if not r.at_end():
        r.sp()
        r.expect(b"RETURN ")
        r.expect(b"(")
        if not r.take(b")"):
            while True:
                opt = r.keyword()
                if opt == "STATUS":
                    r.sp()
                    status = status_items(r)
                else:
                    returns.add(opt)
                if r.take(b")"):
                    break
                r.sp()
    r.end()
    if len(patterns) > MAX_PATTERNS:
        raise SyntaxError_(f"too many patterns (at most {MAX_PATTERNS})")
    for opt in selection:
        if opt not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
            raise SyntaxError_(f"unknown LIST selection option {opt}")
    for opt in returns:
        if opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            raise SyntaxError_(f"unknown LIST return option {opt}")
    recursive = "RECURSIVEMATCH" in selection
    if recursive and not selection & {"SUBSCRIBED", "SPECIAL-USE"}:
        # RFC 5258 §3.1: RECURSIVEMATCH alone is an error.
        raise SyntaxError_("RECURSIVEMATCH needs another selection option")
    sel_subscribed = "SUBSCRIBED" in selection
    sel_special = "SPECIAL-USE" in selection
    show_subscribed = sel_subscribed or "SUBSCRIBED" in returns

    if patterns == [""]:
        # RFC 9051 §6.3.9: the hierarchy delimiter and root of the reference.
        session.write_untagged(b"LIST", b"(\\Noselect)", b'"/"', b'""')
        return Reply("LIST completed")

    full_patterns = [_pattern(reference, p) for p in patterns if p != ""]
    entries = _entries(session)
    matched = await _matching(session, entries, full_patterns)
    # RFC 5258 §3.5: CHILDINFO tells of descendants that meet the selection criteria but
    # are not listed themselves; one that matched a pattern is listed, so it does not count.
    hidden_subscribed: set[str] = set()
    hidden_special: set[str] = set()
    if recursive:
        for name, entry in entries.items():
            if name in matched:
                continue
            ancestors = _ancestors(name)
            if entry.subscribed:
                hidden_subscribed.update(ancestors)
            if entry.info is not None and entry.info.special_use:
                hidden_special.update(ancestors)
    for name in sorted(entries, key=lambda n: (n != "INBOX", n)):
        entry = entries[name]
        if name not in matched:
            continue
        chosen = True
        childinfo: list[bytes] = []
        if sel_subscribed and not entry.subscribed:
            chosen = False
            if name in hidden_subscribed:
                childinfo.append(b'"SUBSCRIBED"')
        if sel_special and (entry.info is None or not entry.info.special_use):
            chosen = False
            if name in hidden_special:
                childinfo.append(b'"SPECIAL-USE"')
        if not chosen and not childinfo:
            continue
        if entry.info is None and not entry.has_children and not sel_subscribed:
            continue  # subscribed-only names appear only under LIST (SUBSCRIBED)
        attrs: list[bytes] = []
        if entry.info is None:
            attrs.append(b"\\NonExistent")
            if entry.has_children:
                # IMAP4rev1 clients know \Noselect, not \NonExistent (which implies it).
                attrs += [b"\\HasChildren"] if session.rev2 else [b"\\Noselect", b"\\HasChildren"]
        else:
            attrs.append(b"\\HasChildren" if entry.has_children else b"\\HasNoChildren")
            if entry.info.special_use:
                attrs.append(entry.info.special_use.encode("ascii"))
        if show_subscribed and entry.subscribed:
            attrs.append(b"\\Subscribed")
        parts = [responses.paren(attrs), b'"/"', mailbox_out(session, name)]
        if childinfo:
            parts.append(b'("CHILDINFO" (' + b" ".join(childinfo) + b"))")
        session.write_untagged(b"LIST", *parts)
        if status is not None and entry.info is not None and chosen:
            # RFC 5819: STATUS right after the mailbox's LIST line. HIGHESTMODSEQ enables
            # CONDSTORE like STATUS does (RFC 7162 §3.1).
            if "HIGHESTMODSEQ" in status:
                session.enable_condstore()
            session.write(status_response(session, entry.info, status))
    return Reply("LIST completed")


def _ancestors(name: str) -> list[str]:
    """ "a/b/c" → ["a", "a/b"]."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


async def _matching(session: Session, names: Iterable[str], patterns: list[Pattern]) -> set[str]:
    """The names some pattern matches. Matching is linear, but thousands of long names
    against a long pattern still add up (0.4 s for 10,000): the work yields to the reactor
    every SLICE_SECONDS so other connections are served meanwhile (DESIGN.md
    "Concurrency")."""
    matched: set[str] = set()
    slice_started = time.monotonic()
    for i, name in enumerate(names, 1):
        if any(p.matches(name) for p in patterns):
            matched.add(name)
        # The clock is read every SLICE_CHECK names: a short list never yields, so its
        # answer does not wait for a reactor turn (tests drive sessions on a task.Clock).
        if i % SLICE_CHECK == 0 and time.monotonic() - slice_started > SLICE_SECONDS:
            await deferLater(cast(Any, session.server.reactor), 0, lambda: None)
            slice_started = time.monotonic()
    return matched


def _pattern(reference: str, pattern: str) -> Pattern:
    """The matcher for reference + pattern; BAD beyond MAX_PATTERN_LENGTH characters, which
    bounds the cost of matching each name (see listmatch)."""
    full = _combine(reference, pattern)
    if len(full) > MAX_PATTERN_LENGTH:
        raise SyntaxError_(f"mailbox pattern too long (at most {MAX_PATTERN_LENGTH} characters)")
    return Pattern(full)


def _combine(reference: str, pattern: str) -> str:
    """RFC 9051 §6.3.9: the reference is prefixed to the pattern (a pattern starting with
    the separator is taken as absolute)."""
    if not reference or pattern.startswith(SEPARATOR):
        return pattern
    return reference + pattern


@command("LSUB", AUTHENTICATED_STATES)
async def lsub(session: Session, cmd: Command) -> Reply | None:
    """RFC 3501 §6.3.9: subscribed names; a parent that is not subscribed but has
    subscribed children matched by % is shown \\Noselect."""
    r = cmd.reader
    reference = r.mailbox()
    r.sp()
    pattern = _pattern(reference, r.list_mailbox())
    r.end()
    entries = _entries(session)
    matched = await _matching(session, entries, [pattern])
    shown: set[str] = set()
    for name in sorted(entries, key=lambda n: (n != "INBOX", n)):
        entry = entries[name]
        if entry.subscribed and name in matched:
            session.write_untagged(b"LSUB", b"()", b'"/"', mailbox_out(session, name))
            shown.add(name)
    for name in sorted(entries):
        entry = entries[name]
        if name not in shown and entry.child_subscribed and name in matched:
            session.write_untagged(b"LSUB", b"(\\Noselect)", b'"/"', mailbox_out(session, name))
    return Reply("LSUB completed")
