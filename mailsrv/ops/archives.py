"""Archives of mail files, read with bounds and written as a stream.

Reading (`read_entries`): an uploaded file that is a zip, a tar (optionally gzip-compressed)
or a plain file (an mbox, possibly gzip-compressed) yields `Entry`s: a checked path and a
reader. Nothing is ever extracted to disk, yet paths are still checked, since they become
mailbox names: an absolute path, a `..` component, a backslash, a drive letter or a NUL
refuses the whole archive. Hostile archives are bounded by `ArchiveLimits`: every byte that
comes out of a decompressor is counted against `max_uncompressed` (a zip or gzip bomb stops
at the limit whatever sizes its headers claim, tar's own headers included), and the number
of entries against `max_entries`. Links, devices and encrypted entries are skipped.

Writing: `ZipStream` and `TarGzStream` write members into a `Sink` whose bytes the caller
takes (`take()`) as they come, so an export of any size holds one message at a time in
memory. Both write only documented formats through public APIs: zipfile on an unseekable
stream (data descriptors) and tar headers from `TarInfo.tobuf` with zlib's gzip framing.
"""

from __future__ import annotations

import datetime
import gzip
import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

import msgspec

from mailsrv.ops.errors import InvalidInput, LimitExceeded

_READ = 64 * 1024


class ArchiveLimits(msgspec.Struct, frozen=True):
    max_uncompressed: int = 2 * 1024**3  # octets out of all decompressors together
    max_entries: int = 100_000  # files and directories in one archive


class UnsafePath(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(f"archive entry with an unsafe path: {name[:200]!r}", "file")


def safe_path(name: str) -> tuple[str, ...]:
    """The path's components ("." and empty ones dropped). Raises UnsafePath."""
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(name)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafePath(name)
    return parts


class _Budget:
    """Decompressed octets left for the whole archive."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LimitExceeded("the archive unpacks to more than the import limit allows")


_DAMAGE = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


class _Counted:
    """A read-only stream that charges what it returns to a budget and reports damaged
    compressed data as InvalidInput. A read never returns more than 64 KiB."""

    def __init__(self, raw: IO[bytes], budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n if n is not None and 0 <= n <= _READ else _READ)
        except _DAMAGE as e:
            raise InvalidInput(f"damaged archive data: {e}", "file") from None
        self._budget.spend(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class Entry:
    """One file of the upload: `path` components (empty for a plain upload), the modification
    time when the archive has one, and a reader that must be used before the next entry."""

    path: tuple[str, ...]
    mtime: datetime.datetime | None
    reader: BinaryIO
    directory: bool = False  # a folder entry (its reader is empty)


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def read_entries(upload: BinaryIO, limits: ArchiveLimits) -> Iterator[Entry]:
    """The entries of an upload (a seekable file), in archive order. Raises InvalidInput (not
    a readable archive, unsafe path), LimitExceeded (too big or too many entries)."""
    budget = _Budget(limits.max_uncompressed)
    magic = upload.read(4)
    upload.seek(0)
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        yield from _zip_entries(upload, limits, budget)
        return
    if magic.startswith(b"\x1f\x8b"):
        with gzip.GzipFile(fileobj=upload, mode="rb") as peek:
            try:
                head = peek.read(512)
            except _DAMAGE as e:
                raise InvalidInput(f"not a readable gzip file: {e}", "file") from None
        upload.seek(0)
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=upload, mode="rb"))
        if not _is_tar(head):
            yield Entry((), None, _Counted(stream, budget))  # type: ignore[arg-type]
            return
        yield from _tar_entries(_Counted(stream, budget), limits)
        return
    head = upload.read(512)
    upload.seek(0)
    if _is_tar(head):
        yield from _tar_entries(_Counted(upload, budget), limits)
        return
    yield Entry((), None, _Counted(upload, budget))  # type: ignore[arg-type]


def _zip_entries(upload: BinaryIO, limits: ArchiveLimits, budget: _Budget) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InvalidInput(f"not a readable zip file: {e}", "file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise LimitExceeded(f"the archive has more than {limits.max_entries} entries")
        paths = [safe_path(info.filename) for info in infos]  # refuse before importing anything
        for info, path in zip(infos, paths, strict=True):
            mode = info.external_attr >> 16
            if info.is_dir():
                yield Entry(path, None, io.BytesIO(), directory=True)
                continue
            if stat.S_ISLNK(mode) or info.flag_bits & 0x1:  # 0x1: encrypted
                continue
            try:
                when = datetime.datetime(*info.date_time, tzinfo=datetime.UTC)
            except ValueError:
                when = None
            try:
                member = archive.open(info)
            except _DAMAGE as e:
                raise InvalidInput(f"damaged zip entry {info.filename[:200]!r}: {e}", "file") from None
            with member:
                yield Entry(path, when, _Counted(member, budget))  # type: ignore[arg-type]


def _tar_entries(stream: _Counted, limits: ArchiveLimits) -> Iterator[Entry]:
    count = 0
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
    except _DAMAGE as e:
        raise InvalidInput(f"not a readable tar file: {e}", "file") from None
    with archive:
        members = iter(archive)
        while True:
            try:
                info = next(members)
            except StopIteration:
                return
            except _DAMAGE as e:
                raise InvalidInput(f"damaged tar file: {e}", "file") from None
            count += 1
            if count > limits.max_entries:
                raise LimitExceeded(f"the archive has more than {limits.max_entries} entries")
            path = safe_path(info.name)
            if info.isdir():
                yield Entry(path, None, io.BytesIO(), directory=True)
                continue
            if not info.isfile():
                continue  # links, devices: nothing to read
            reader = archive.extractfile(info)
            if reader is None:
                continue
            when = datetime.datetime.fromtimestamp(info.mtime, datetime.UTC) if 0 < info.mtime < 2**33 else None
            # The tar stream below is already counted: the member is not charged twice.
            yield Entry(path, when, _Counted(reader, _Budget(2**62)))  # type: ignore[arg-type]


# --- writing -----------------------------------------------------------------------------------


class Sink:
    """An unseekable output whose bytes are taken in pieces (zipfile sees no tell/seek and
    writes data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(bytes(data))
            self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return data


def _zip_time(when: datetime.datetime) -> tuple[int, int, int, int, int, int]:
    utc = when.astimezone(datetime.UTC)
    if utc.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)


class ZipStream:
    """Members written one after the other (deflated) into a Sink."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._zip = zipfile.ZipFile(cast(IO[bytes], sink), mode="w", compression=zipfile.ZIP_DEFLATED)

    def add(self, name: str, data: bytes, when: datetime.datetime) -> None:
        info = zipfile.ZipInfo(name, _zip_time(when))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        self._zip.writestr(info, data)

    def directory(self, name: str, when: datetime.datetime) -> None:
        """An empty folder (`name` ends with "/"), so an unpacked Maildir has new/ and tmp/."""
        info = zipfile.ZipInfo(name, _zip_time(when))
        info.external_attr = (0o40700 << 16) | 0x10  # the MS-DOS directory bit too
        self._zip.writestr(info, b"")

    def open(self, name: str, when: datetime.datetime, large: bool) -> IO[bytes]:
        """A member written in pieces (an mbox); `large` when it may pass 2 GiB (ZIP64)."""
        info = zipfile.ZipInfo(name, _zip_time(when))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        return self._zip.open(info, mode="w", force_zip64=large)

    def close(self) -> None:
        self._zip.close()


class TarGzStream:
    """A gzip-compressed POSIX (pax) tar written member by member into a Sink. A member's
    size goes in its header, so its data must be known in full or counted beforehand."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing (RFC 1952)

    def _write(self, data: bytes) -> None:
        self.sink.write(self._gzip.compress(data))

    def header(self, name: str, size: int, when: datetime.datetime) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(when.timestamp())
        info.mode = 0o600
        self._write(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict"))

    def directory(self, name: str, when: datetime.datetime) -> None:
        info = tarfile.TarInfo(name.rstrip("/"))
        info.type = tarfile.DIRTYPE
        info.mtime = int(when.timestamp())
        info.mode = 0o700
        self._write(info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict"))

    def data(self, data: bytes) -> None:
        self._write(data)

    def end_member(self, size: int) -> None:
        """Pads the member's data to the 512-octet block."""
        if size % tarfile.BLOCKSIZE:
            self._write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def add(self, name: str, data: bytes, when: datetime.datetime) -> None:
        self.header(name, len(data), when)
        self.data(data)
        self.end_member(len(data))

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))  # end of archive
        self.sink.write(self._gzip.flush())
