"""Import of mbox and Maildir mail into an account, and export of its mailboxes as an archive.

Import (`import_upload`): an uploaded file (a plain mbox, or a zip / tar / tgz of mbox files
and Maildir folders, see `archives.read_entries` for the bounds) is parsed in the `files`
thread pool a batch at a time; the reactor appends each batch through the store
(`append_many`, one commit per batch), creating missing mailboxes through `ops.mail`, and
reports progress (octets of the upload read, messages stored) to a callback, so a web page
can show a bar. Mailbox names come from the archive's paths: `Lists/Go.mbox` and
`Lists/Go/cur/...` both go to "Lists/Go"; a Maildir++ `.Lists.Go/cur/...` too; a plain mbox
goes to the mailbox the caller names. Messages larger than the configured maximum, and
entries that are neither mbox nor Maildir messages, are skipped and reported; an unsafe path,
a damaged archive, a limit or the quota stops the import (what was stored stays, and the
result says how far it got).

Export (`Export`): all mailboxes or one, as zip or tgz of mbox files (`<mailbox>.mbox`) or
Maildir folders (`<mailbox>/cur/<epoch>.M<id>.mailsrv:2,<flags>` with `dovecot-keywords`),
the formats of `mailformats`. It is pulled a chunk at a time (`next_chunk`); message files
are read and compressed in the `files` pool, and at most one message plus one chunk is in
memory. A tgz member's size precedes its data, so each mailbox's mbox is first written to an
unlinked temporary file in the data directory, then copied out in chunks.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

import msgspec
from twisted.internet.defer import Deferred, maybeDeferred

from mailsrv.ops import mailformats as fmt
from mailsrv.ops.archives import ArchiveLimits, Entry, Sink, TarGzStream, ZipStream, read_entries
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound, OpsError
from mailsrv.ops.mail import MailContext, canonical_flags, create_mailbox
from mailsrv.store import interfaces as si

if TYPE_CHECKING:
    from pathlib import Path

    from mailsrv.server import Server

BATCH_MESSAGES = 200
BATCH_OCTETS = 8 * 1024 * 1024
CHUNK = 256 * 1024  # export output per next_chunk, roughly
MAX_PROBLEMS = 50
_LINE = 64 * 1024
_MAILDIR_METADATA = re.compile(
    r"^(dovecot[-.].*|maildirfolder|subscriptions|courierimap.*|\.uidvalidity|mbsyncstate.*)$"
)


def _runner(server: Server) -> Callable[..., Deferred[Any]]:
    if server.pools is not None:
        return server.pools.files
    return lambda f, *a: maybeDeferred(f, *a)


# --- import ------------------------------------------------------------------------------------


class ImportProgress(msgspec.Struct, frozen=True):
    """How far an import got: `read` of `total` octets of the upload, messages stored and
    skipped so far, the mailbox being filled."""

    read: int
    total: int
    messages: int
    skipped: int
    mailbox: str


class ImportResult(msgspec.Struct, frozen=True):
    messages: int
    skipped: int
    mailboxes: list[str]  # the mailboxes that received messages, sorted
    problems: list[str]  # what was skipped and why (the first MAX_PROBLEMS)


class _Parsed(NamedTuple):
    """A message to store; with empty `data`, only a mailbox to create."""

    mailbox: str
    data: bytes
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None


class _Lines:
    """Lines of a stream (each at most 64 KiB; a longer one comes in pieces)."""

    def __init__(self, reader: BinaryIO, prefix: bytes = b"") -> None:
        self._reader = reader
        self._buffer = prefix
        self._eof = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            i = self._buffer.find(b"\n", 0, _LINE)
            if i >= 0:
                line, self._buffer = self._buffer[: i + 1], self._buffer[i + 1 :]
                yield line
                continue
            if len(self._buffer) >= _LINE or (self._eof and self._buffer):
                line, self._buffer = self._buffer[:_LINE], self._buffer[_LINE:]
                yield line
                continue
            if self._eof:
                return
            data = self._reader.read(_LINE)
            if not data:
                self._eof = True
            self._buffer += data


def _read_bounded(reader: BinaryIO, limit: int, prefix: bytes = b"") -> bytes | None:
    """The rest of the stream, or None when it is longer than `limit`."""
    parts = [prefix]
    size = len(prefix)
    while size <= limit:
        data = reader.read(_LINE)
        if not data:
            return b"".join(parts)
        parts.append(data)
        size += len(data)
    return None


def mailbox_name(parts: tuple[str, ...], default: str) -> str:
    """The mailbox for an archive folder path: "/"-joined; from a Maildir++ folder (`.Lists.Go`,
    at any depth: `Maildir/.Lists.Go`) the dotted name split at its dots; a folder named
    `Maildir` is the root; INBOX in its one spelling; `default` for the root."""
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].startswith(".") and len(parts[i]) > 1:
            parts = tuple(parts[i][1:].split(".")) + parts[i + 1 :]
            break
    else:
        if parts and parts[-1].casefold() == "maildir":
            parts = ()
    if not parts:
        return default
    if parts[0].casefold() == "inbox":
        parts = ("INBOX", *parts[1:])
    return "/".join(parts)


class _ImportReader:
    """The thread-side half of an import: turns the upload into batches of messages. Its
    methods run in the `files` pool, one call at a time."""

    def __init__(self, upload: Path | BinaryIO, default_mailbox: str, limits: ArchiveLimits, max_message: int) -> None:
        self._upload = upload
        self._default = default_mailbox
        self._limits = limits
        self._max_message = max_message
        self._file: BinaryIO | None = None
        self._owned = False  # opened here (from a path), so closed here
        self._messages: Iterator[_Parsed] | None = None
        self._keywords: dict[tuple[str, ...], dict[str, str]] = {}
        self.total = 0
        self.skipped = 0
        self.problems: list[str] = []

    def _problem(self, text: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    @property
    def position(self) -> int:
        try:
            return self._file.tell() if self._file is not None else 0
        except (OSError, ValueError):
            return 0

    def next_batch(self) -> list[_Parsed]:
        """Up to BATCH_MESSAGES messages or BATCH_OCTETS; [] at the end."""
        if self._messages is None:
            if isinstance(self._upload, (str, os.PathLike)):
                self._file = open(self._upload, "rb")
                self._owned = True
            else:
                self._file = self._upload
                self._file.seek(0)
            self.total = self._file.seek(0, os.SEEK_END)
            self._file.seek(0)
            self._messages = self._all_messages(read_entries(self._file, self._limits))
        batch: list[_Parsed] = []
        octets = 0
        for message in self._messages:
            batch.append(message)
            octets += len(message.data)
            if len(batch) >= BATCH_MESSAGES or octets >= BATCH_OCTETS:
                break
        return batch

    def close(self) -> None:
        if self._file is not None and self._owned:
            self._file.close()

    def _all_messages(self, entries: Iterator[Entry]) -> Iterator[_Parsed]:
        for entry in entries:
            yield from self._entry_messages(entry)

    def _entry_messages(self, entry: Entry) -> Iterator[_Parsed]:
        path, reader = entry.path, entry.reader
        shown = "/".join(path) or "the upload"
        if not path:
            head = reader.read(5)
            if head.startswith(b"From "):
                yield from self._mbox(_Lines(reader, head), self._default, shown)
            else:
                yield from self._single(reader, head, self._default, (), entry.mtime, shown)
            return
        name = path[-1]
        if entry.directory:
            if name == "cur":  # a Maildir folder, maybe empty: its mailbox exists
                yield _Parsed(mailbox_name(path[:-1], self._default), b"", (), None)
            return
        if path[0] == "__MACOSX" or name.startswith("._") or name == ".DS_Store":
            return
        if name == "dovecot-keywords":
            data = _read_bounded(reader, 64 * 1024)
            self._keywords[path[:-1]] = fmt.parse_dovecot_keywords(data or b"")
            return
        if _MAILDIR_METADATA.match(name):
            return
        if len(path) >= 2 and path[-2] in ("cur", "new"):
            folder = path[:-2]
            flags, when = fmt.parse_maildir_name(name, self._keywords.get(folder, {}))
            mailbox = mailbox_name(folder, self._default)
            yield from self._single(reader, b"", mailbox, tuple(flags), when or entry.mtime, shown)
            return
        if len(path) >= 2 and path[-2] == "tmp":
            return
        head = reader.read(5)
        if not head and name.lower().endswith(".mbox"):  # an empty mailbox
            yield _Parsed(mailbox_name((*path[:-1], name[:-5]), self._default), b"", (), None)
        elif head.startswith(b"From "):
            stem = re.sub(r"\.(mbox|mbx)$", "", name, flags=re.IGNORECASE)
            yield from self._mbox(_Lines(reader, head), mailbox_name((*path[:-1], stem), self._default), shown)
        elif name.lower().endswith(".eml"):
            yield from self._single(reader, head, mailbox_name(path[:-1], self._default), (), entry.mtime, shown)
        else:
            self._problem(f"{shown}: neither an mbox file nor a Maildir message")

    def _single(
        self,
        reader: BinaryIO,
        head: bytes,
        mailbox: str,
        flags: tuple[str, ...],
        when: datetime.datetime | None,
        shown: str,
    ) -> Iterator[_Parsed]:
        data = _read_bounded(reader, self._max_message, head)
        if data is None:
            self._problem(f"{shown}: larger than the {self._max_message} octets a message may have")
        elif not data.strip():
            self._problem(f"{shown}: empty")
        else:
            yield _Parsed(mailbox, fmt.to_crlf(data), flags, when)

    def _mbox(self, lines: _Lines, mailbox: str, shown: str) -> Iterator[_Parsed]:
        current: list[bytes] | None = None
        size = 0
        too_big = False
        when: datetime.datetime | None = None
        previous_blank = True
        number = 0

        def finish() -> _Parsed | None:
            if current is None:
                return None
            if too_big:
                self._problem(f"{shown}: message {number} is larger than the {self._max_message} octets allowed")
                return None
            if current and current[-1] in (b"\n", b"\r\n"):
                current.pop()  # the empty line that ends an mbox entry
            data = b"".join(current).replace(b"\r\n", b"\n")
            if not data.strip():
                return None
            data, flags = fmt.split_mbox_metadata(data)
            return _Parsed(mailbox, fmt.to_crlf(data), tuple(flags), when)

        for line in lines:
            if previous_blank and line.startswith(b"From "):
                parsed = finish()
                if parsed is not None:
                    yield parsed
                current, size, too_big, number = [], 0, False, number + 1
                when = fmt.parse_from_line(line)
                previous_blank = False
                continue
            previous_blank = line in (b"\n", b"\r\n")
            if current is None or too_big:
                continue
            size += len(line)
            if size > self._max_message:
                too_big, current = True, []
                continue
            current.append(fmt.unquote_mbox_line(line))
        parsed = finish()
        if parsed is not None:
            yield parsed


def _keep_flags(flags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags that are valid IMAP flags (an archive's odd keywords are dropped)."""
    kept: list[str] = []
    for flag in flags:
        try:
            kept += canonical_flags([flag])
        except InvalidInput:
            continue
    return tuple(kept)


async def import_upload(
    server: Server,
    account: str,
    upload: Path | BinaryIO,
    *,
    default_mailbox: str = "INBOX",
    limits: ArchiveLimits | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
    ctx: MailContext | None = None,
) -> ImportResult:
    """Imports the file at `upload` (a path, or a seekable binary file the caller closes) into
    `account` (see the module docstring). Raises
    InvalidInput (unreadable or unsafe archive), LimitExceeded (archive limits, quota: the
    message says how many were stored)."""
    store = server.stores.open(account)
    ctx = ctx or MailContext(store=store, hooks=server.mail_hooks)
    reader = _ImportReader(upload, default_mailbox, limits or ArchiveLimits(), server.config.limits.max_message_size)
    run = _runner(server)
    stored = 0
    mailboxes: set[str] = set()
    refused: set[str] = set()
    try:
        while True:
            try:
                batch = await run(reader.next_batch)
            except OpsError as e:
                if stored:
                    e.message = f"{e.message} ({stored} messages were imported before)"
                    e.args = (e.message,)
                raise
            if not batch:
                break
            for wanted, group in _by_mailbox(batch):
                name = await _ensure_mailbox(ctx, wanted, refused, reader)
                news = [si.NewMessage(m.data, _keep_flags(m.flags), m.internal_date) for m in group if m.data]
                if name is None or not news:
                    continue
                try:
                    await store.append_many(name, news)
                except si.OverQuota:
                    raise LimitExceeded(f"over quota after importing {stored} messages") from None
                except si.MailboxNotFound:
                    reader.skipped += len(news)
                    continue
                stored += len(news)
                mailboxes.add(name)
                if progress is not None:
                    progress(ImportProgress(reader.position, reader.total, stored, reader.skipped, name))
    finally:
        await run(reader.close)
    if progress is not None:
        progress(ImportProgress(reader.total, reader.total, stored, reader.skipped, ""))
    return ImportResult(messages=stored, skipped=reader.skipped, mailboxes=sorted(mailboxes), problems=reader.problems)


def _by_mailbox(batch: list[_Parsed]) -> Iterator[tuple[str, list[_Parsed]]]:
    """Consecutive runs of one mailbox, in order."""
    run: list[_Parsed] = []
    for message in batch:
        if run and run[0].mailbox != message.mailbox:
            yield run[0].mailbox, run
            run = []
        run.append(message)
    if run:
        yield run[0].mailbox, run


async def _ensure_mailbox(ctx: MailContext, name: str, refused: set[str], reader: _ImportReader) -> str | None:
    """The mailbox's stored name (created when missing), or None when its name is refused."""
    if name in refused:
        return None
    try:
        return (await ctx.store.mailbox_async(name)).name
    except si.MailboxNotFound:
        pass
    try:
        return (await create_mailbox(ctx, name)).name
    except OpsError as e:
        refused.add(name)
        reader._problem(f"mailbox {name[:200]!r} not created: {e.message}")
        return None


# --- export ------------------------------------------------------------------------------------


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True):
    format: Literal["mbox", "maildir"] = "mbox"
    archive: Literal["zip", "tgz"] = "zip"
    mailbox: str | None = None  # None: every mailbox


async def open_export(server: Server, account: str, request: ExportRequest) -> Export:
    """The export of `request`'s mailboxes (read from the index through the store's Deferred
    calls). Raises NotFound for an unknown mailbox."""
    store = server.stores.open(account)
    if request.mailbox is not None:
        try:
            mailboxes = [await store.mailbox_async(request.mailbox)]
        except si.MailboxNotFound:
            raise NotFound(f"no such mailbox: {request.mailbox}") from None
    else:
        mailboxes = await store.mailboxes_async()
    return Export(server, account, request, mailboxes)


class Export:
    """One export of `mailboxes` (`open_export` finds them), pulled with `next_chunk()` until
    it returns b"". Message files are read in the files pool."""

    def __init__(
        self, server: Server, account: str, request: ExportRequest, mailboxes: Sequence[si.MailboxInfo]
    ) -> None:
        self._store = server.stores.open(account)
        self._run = _runner(server)
        self._request = request
        self._tmpdir = server.config.data_dir
        self._pending = deque(mailboxes)
        self._sink = Sink()
        self._writer: ZipStream | TarGzStream = (
            ZipStream(self._sink) if request.archive == "zip" else TarGzStream(self._sink)
        )
        self._now = datetime.datetime.now(datetime.UTC)
        self._queue: deque[si.MessageInfo] = deque()
        self._mailbox: si.MailboxInfo | None = None
        self._member: IO[bytes] | None = None  # the open mbox member (zip) or spool file (tgz)
        self._letters: dict[str, str] = {}
        self._copying = -1  # tgz mbox: octets of the spool copied out, -1 when not copying
        self._done = False
        self.exported = 0
        self.missing = 0  # messages expunged while the export ran
        stamp = self._now.strftime("%Y%m%d")
        what = re.sub(r"[^A-Za-z0-9._-]+", "_", request.mailbox or "all")[:60]
        safe_account = re.sub(r"[^A-Za-z0-9._-]+", "_", account)[:60]
        self.filename = f"mail-{safe_account}-{what}-{request.format}-{stamp}.{request.archive}"
        self.content_type = "application/zip" if request.archive == "zip" else "application/gzip"

    async def next_chunk(self) -> bytes:
        """The next piece of the archive (about CHUNK octets); b"" once it is complete."""
        while not self._done:
            if self._mailbox is None:
                if not self._pending:
                    await self._run(self._writer.close)
                    self._done = True
                    break
                self._mailbox = self._pending.popleft()
                self._queue = deque(await self._store.messages_async(self._mailbox.id))
                await self._run(self._start_mailbox)
            await self._run(self._write_some)
            if self._sink.pending >= CHUNK:
                return self._sink.take()
        return self._sink.take()

    def close(self) -> None:
        """Releases the spool file of an abandoned export."""
        if self._member is not None:
            self._member.close()
            self._member = None

    # The methods below run in the files pool, one at a time.

    def _start_mailbox(self) -> None:
        assert self._mailbox is not None
        name = self._mailbox.name
        writer = self._writer
        if self._request.format == "mbox":
            if isinstance(writer, ZipStream):
                self._member = writer.open(f"{name}.mbox", self._now, large=self._mailbox.size > 2**30)
            else:
                self._member = tempfile.TemporaryFile(dir=self._tmpdir)
            return
        keywords = {f for m in self._queue for f in m.flags if not f.startswith("\\")}
        self._letters = fmt.keyword_letters(keywords)
        if isinstance(writer, TarGzStream):
            for sub in ("", "/cur", "/new", "/tmp"):
                writer.directory(f"{name}{sub}/", self._now)
        else:
            for sub in ("/new", "/tmp"):
                writer.directory(f"{name}{sub}/", self._now)
        if self._letters:
            writer.add(f"{name}/dovecot-keywords", fmt.dovecot_keywords_file(self._letters), self._now)

    def _write_some(self) -> None:
        assert self._mailbox is not None
        if self._copying >= 0:
            self._copy_spool()
            return
        while self._queue and self._sink.pending < CHUNK:
            info = self._queue.popleft()
            try:
                data = self._store.read(info.message_id)
            except FileNotFoundError:
                self.missing += 1
                continue
            self.exported += 1
            if self._request.format == "mbox":
                assert self._member is not None
                self._member.write(fmt.mbox_entry(data, info.flags, info.internal_date))
            else:
                name = fmt.maildir_name(info.message_id, info.internal_date, info.flags, self._letters)
                self._writer.add(f"{self._mailbox.name}/cur/{name}", data, info.internal_date)
        if not self._queue:
            self._end_mailbox()

    def _end_mailbox(self) -> None:
        assert self._mailbox is not None
        if self._member is not None and isinstance(self._writer, TarGzStream):
            size = self._member.tell()
            self._writer.header(f"{self._mailbox.name}.mbox", size, self._now)
            self._member.seek(0)
            self._copying = 0
            self._copy_spool()
            return
        if self._member is not None:
            self._member.close()
            self._member = None
        self._mailbox = None

    def _copy_spool(self) -> None:
        assert self._member is not None and isinstance(self._writer, TarGzStream) and self._mailbox is not None
        while self._sink.pending < CHUNK:
            data = self._member.read(CHUNK)
            if not data:
                self._writer.end_member(self._copying)
                self._member.close()
                self._member = None
                self._copying = -1
                self._mailbox = None
                return
            self._writer.data(data)
            self._copying += len(data)
