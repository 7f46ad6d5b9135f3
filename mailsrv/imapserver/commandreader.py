"""Byte-level assembly of IMAP commands from the connection's input (RFC 9051 §2.2, §4.3).

A command is one or more lines; a line that ends with a literal header (``{n}``,
``{n+}`` for LITERAL+ / LITERAL- (RFC 7888), ``~{n}`` literal8 for APPEND with BINARY,
RFC 3516) is followed by exactly n octets of literal data and then the command continues.
`CommandAssembler` buffers input and hands out events one at a time, only when the
session asks (`next_event()`), so a session that is busy with a command simply stops
asking and pipelined input stays buffered.

Limits: a line (outside literals) may be at most `max_line` octets; a literal at most
`literal_limit(first_line)` octets (the APPENDLIMIT for APPEND, `max_line` otherwise); a
whole command at most that plus a few lines. Refusals keep the connection usable:

- a synchronising literal that is too large is refused before the client sends it: the
  session answers tagged NO [TOOBIG] (APPEND, RFC 7889) or BAD [TOOBIG], without the
  continuation request, and the client does not send it;
- a non-synchronising literal that is too large is read and thrown away, as is the rest
  of that command, and then refused the same way (RFC 7888 §4);
- a line that is too long is thrown away up to its CRLF (and its literal, if it announced
  a non-synchronising one), then answered BAD [TOOBIG].
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mailsrv.spool import Spool

_LITERAL_AT_END = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
_TAG = re.compile(rb"[^ (){%*\"\\\x00-\x1f\x7f-\xff+]+")


@dataclass
class SpooledLiteral:
    """A large APPEND literal, written to a private spool file as it arrived instead of being
    kept in the command (issue 17 item 7)."""

    spool: Spool
    has_nul: bool = False  # a NUL was seen (allowed only in a literal8)


@dataclass(frozen=True)
class CommandReady:
    """A complete command: the final CRLF removed, literals in place, except spooled ones:
    their data is absent from `data`, and `spooled` maps the offset where it would start
    to the spool (the Reader takes it from there)."""

    data: bytes
    spooled: dict[int, SpooledLiteral] = field(default_factory=dict)


@dataclass(frozen=True)
class ContinuationNeeded:
    """A synchronising literal was accepted: the session must now send ``+ ...``."""

    size: int


@dataclass(frozen=True)
class CommandRefused:
    """A command that was thrown away unread; answer ``tag status [code] text``."""

    tag: str | None  # None when not even a tag could be read
    status: str  # "BAD" or "NO"
    code: str | None
    text: str


@dataclass(frozen=True)
class LineReady:
    """A raw line (AUTHENTICATE responses, IDLE's DONE), without CRLF."""

    data: bytes


Event = CommandReady | ContinuationNeeded | CommandRefused | LineReady


def command_word(first_line: bytes) -> bytes:
    """The upper-cased command name of a command's first line (after a "UID " prefix)."""
    words = first_line.split(b" ", 3)
    if len(words) < 2:
        return b""
    word = words[1].upper()
    if word == b"UID" and len(words) > 2:
        word = words[2].upper()
    return word


def tag_of(first_line: bytes) -> str | None:
    m = _TAG.match(first_line)
    return m.group(0).decode("ascii") if m else None


class CommandAssembler:
    def __init__(
        self,
        max_line: int,
        literal_limit: Callable[[bytes], int],
        admit_literal: Callable[[bytes, int], CommandRefused | None] | None = None,
        spool_literal: Callable[[bytes, int], Spool | None] | None = None,
    ) -> None:
        self.max_line = max_line
        self.literal_limit = literal_limit
        # Asked about each literal within the limits; a refusal ends the command like a too
        # large literal does (the session's memory budget: NO [LIMIT]).
        self.admit_literal = admit_literal
        # Asked about each admitted literal: a Spool to write it to instead of memory, or None.
        self.spool_literal = spool_literal
        self._spooled: dict[int, SpooledLiteral] = {}
        self._spooling: SpooledLiteral | None = None  # the literal being read goes there
        self._length = 0  # octets of the command so far, as `CommandReady.data` will hold them
        self.buffer = bytearray()
        self._parts: list[bytes] = []  # the command so far
        self._size = 0
        self._literal_left = 0  # octets of literal data still to be read
        self._discarding = False  # the current command is being thrown away
        self._discard_line = False  # throwing away a too-long line up to its CRLF
        self._refusal: CommandRefused | None = None

    # --- input ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.buffer += data

    def clear(self) -> None:
        """Drops all buffered input and any partial command (STARTTLS, COMPRESS)."""
        self.buffer.clear()
        self._reset()

    def _reset(self) -> None:
        for spooled in self._spooled.values():
            spooled.spool.discard()
        self._spooled = {}
        self._spooling = None
        self._length = 0
        self._parts = []
        self._size = 0
        self._literal_left = 0
        self._discarding = False
        self._refusal = None

    @property
    def in_literal(self) -> bool:
        """True while literal data is still to be read."""
        return self._literal_left > 0

    @property
    def in_command(self) -> bool:
        """True while part of a command has been read (a literal is pending...)."""
        return bool(self._parts) or self._literal_left > 0 or self._discarding

    # --- events --------------------------------------------------------------------------
    def next_line(self) -> LineReady | CommandRefused | None:
        """A raw line for AUTHENTICATE/IDLE, or None until one is complete."""
        if self._discard_line:
            if not self._skip_to_crlf():
                return None
            return CommandRefused(None, "BAD", "TOOBIG", "line too long")
        i = self.buffer.find(b"\r\n")
        if i < 0:
            if len(self.buffer) > self.max_line:
                self.buffer.clear()
                self._discard_line = True
            return None
        line = bytes(self.buffer[:i])
        del self.buffer[: i + 2]
        if len(line) > self.max_line:
            return CommandRefused(None, "BAD", "TOOBIG", "line too long")
        return LineReady(line)

    def _skip_to_crlf(self) -> bool:
        """Throws away input up to and including the next CRLF; True when found."""
        # Keep a trailing CR: the LF may come in the next read.
        i = self.buffer.find(b"\r\n")
        if i < 0:
            keep = self.buffer[-1:] == b"\r"
            del self.buffer[: len(self.buffer) - (1 if keep else 0)]
            return False
        del self.buffer[: i + 2]
        self._discard_line = False
        return True

    def next_event(self) -> Event | None:
        """The next event, or None when more input is needed."""
        while True:
            if self._literal_left:
                take = min(self._literal_left, len(self.buffer))
                if not take:
                    return None
                if self._spooling is not None and not self._discarding:
                    chunk = bytes(self.buffer[:take])
                    self._spooling.spool.write(chunk)
                    self._spooling.has_nul = self._spooling.has_nul or b"\x00" in chunk
                elif not self._discarding:
                    self._parts.append(bytes(self.buffer[:take]))
                    self._length += take
                del self.buffer[:take]
                self._literal_left -= take
                if self._literal_left:
                    return None
                self._spooling = None
                continue

            if self._discard_line:
                # A too-long line: skip to its end, then look at how it ended.
                i = self.buffer.find(b"\r\n")
                if i < 0:
                    self._keep_line_tail()
                    return None
                tail = bytes(self.buffer[:i])
                del self.buffer[: i + 2]
                self._discard_line = False
                m = _LITERAL_AT_END.search(tail[-32:])
                if m and m.group(3) == b"+":
                    self._literal_left = int(m.group(2))
                    continue
                refusal = self._refusal or CommandRefused(None, "BAD", "TOOBIG", "line too long")
                self._reset()
                return refusal

            i = self.buffer.find(b"\r\n")
            if i < 0:
                if len(self.buffer) > self.max_line:
                    first = bytes(self.buffer[:200]) if not self._parts else self._parts[0]
                    if not self._discarding:
                        self._discarding = True
                        self._refusal = CommandRefused(tag_of(first), "BAD", "TOOBIG", "line too long")
                    self._parts = []
                    self._keep_line_tail()
                    self._discard_line = True
                return None
            line = bytes(self.buffer[:i])
            del self.buffer[: i + 2]
            if len(line) > self.max_line and not self._discarding:
                first = line[:200] if not self._parts else self._parts[0]
                self._discarding = True
                self._refusal = CommandRefused(tag_of(first), "BAD", "TOOBIG", "line too long")
            m = _LITERAL_AT_END.search(line[-32:])
            if self._discarding:
                if m and m.group(3) == b"+":
                    self._literal_left = int(m.group(2))
                    continue
                refusal = self._refusal or CommandRefused(None, "BAD", None, "command refused")
                self._reset()
                return refusal

            first_line = self._parts[0] if self._parts else line
            self._parts.append(line)
            self._length += len(line)
            self._size += len(line)
            if not m:
                data = b"".join(self._parts)
                spooled, self._spooled = self._spooled, {}  # the command owns them now
                self._reset()
                return CommandReady(data, spooled)

            size = int(m.group(2))
            sync = m.group(3) != b"+"
            self._parts.append(b"\r\n")
            self._length += 2
            limit = self.literal_limit(first_line)
            refused: CommandRefused | None = None
            if size > limit or self._size + size > limit + 4 * self.max_line:
                is_append = command_word(first_line) == b"APPEND"
                refused = CommandRefused(
                    tag_of(first_line),
                    "NO" if is_append else "BAD",
                    "TOOBIG",
                    "message too large" if is_append else "literal too large",
                )
            elif self.admit_literal is not None:
                refused = self.admit_literal(first_line, size)
            if refused is not None:
                if sync:
                    # RFC 9051 §7.5: the client sends a synchronising literal only after
                    # our "+"; answering instead ends the command.
                    self._reset()
                    return refused
                self._discarding = True
                self._refusal = refused
                self._parts = []
                self._literal_left = size
                continue
            self._size += size
            self._literal_left = size
            spool = self.spool_literal(first_line, size) if self.spool_literal is not None and size else None
            if spool is not None:
                self._spooling = SpooledLiteral(spool)
                self._spooled[self._length] = self._spooling
            if sync:
                return ContinuationNeeded(size)

    def _keep_line_tail(self) -> None:
        # While discarding a long line, keep only its last bytes: enough to see whether it
        # ends with a literal header, and a CR whose LF is still to come.
        if len(self.buffer) > 64:
            del self.buffer[: len(self.buffer) - 64]
