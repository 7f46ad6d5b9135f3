"""Import (mbox, Maildir; plain, zip, tgz; hostile archives) and export (zip/tgz of mbox or
Maildir, pulled in chunks), and the round trip export -> import into another account."""

from __future__ import annotations

import datetime
import gzip
import io
import tarfile
import zipfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mailsrv.ops import accounts
from mailsrv.ops.archives import ArchiveLimits
from mailsrv.ops.errors import InvalidInput, LimitExceeded, NotFound
from mailsrv.ops.importexport import CHUNK, ExportRequest, ImportProgress, import_upload, mailbox_name, open_export
from mailsrv.pools import inline_pools
from mailsrv.server import Server
from mailsrv.store.registry import SQLiteStoreRegistry
from tests.ops import world

T = TypeVar("T")


@pytest.fixture
def server(server: Server) -> Server:
    """The ops world's server with its stores on its clock (group commits run when the
    clock turns, as `result` below makes it)."""
    server.stores.close_all()
    server.stores = SQLiteStoreRegistry(
        server.config.data_dir, quota_for=server.quota_for, reactor=server.reactor, pools=inline_pools()
    )
    return server


def result(d: Deferred[T] | Coroutine[Any, Any, T] | T) -> T:
    """Like world.result, turning the clock until the store's commits have run."""
    if isinstance(d, Coroutine):
        d = Deferred.fromCoroutine(d)
    if isinstance(d, Deferred):
        out: list[Any] = []
        d.addBoth(lambda r: out.append(r) or r)
        clock = _CLOCK[0]
        for _ in range(100_000):
            if out:
                break
            clock.advance(0)
    return world.result(d)


_CLOCK: list[Clock] = []


@pytest.fixture(autouse=True)
def _clock(server: Server) -> None:
    _CLOCK[:] = [server.reactor]  # type: ignore[list-item]


WHEN = datetime.datetime(2024, 3, 1, 12, 30, 5, tzinfo=datetime.UTC)


def _msg(n: int, body: bytes = b"") -> bytes:
    return (
        f"From: a{n}@example.com\r\nTo: alice@example.org\r\nSubject: message {n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\nBody {n}\r\n".encode()
        + body
    )


def _fill(server: Server, account: str) -> None:
    store = server.stores.open(account)
    result(store.create_mailbox("Lists/Go"))
    result(store.append("INBOX", _msg(1), ("\\Seen",), WHEN))
    # A body line that looks like an mbox separator, and one already quoted.
    result(store.append("INBOX", _msg(2, b"From here on\r\n>From there\r\n"), ("\\Flagged", "$Forwarded"), WHEN))
    result(store.append("INBOX", _msg(3), (), WHEN + datetime.timedelta(days=1)))
    result(store.append("Lists/Go", _msg(4), ("\\Answered", "\\Seen", "$Label1"), WHEN))
    result(store.append("Sent", _msg(5), ("\\Seen", "\\Draft"), WHEN))


def _content(server: Server, account: str) -> dict[str, list[tuple[bytes, frozenset[str], int]]]:
    store = server.stores.open(account)
    out: dict[str, list[tuple[bytes, frozenset[str], int]]] = {}
    for box in store.mailboxes():
        out[box.name] = sorted(
            (store.read(m.message_id), m.flags, int(m.internal_date.timestamp())) for m in store.messages(box.id)
        )
    return out


def _export(server: Server, account: str, request: ExportRequest) -> bytes:
    export = result(open_export(server, account, request))
    chunks = []
    while chunk := result(export.next_chunk()):
        chunks.append(chunk)
    return b"".join(chunks)


def _add_bob(server: Server) -> None:
    result(accounts.add(server, accounts.AddAccount(account="bob", address="bob@example.org", password="bob-secret-1")))


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
@pytest.mark.parametrize("archive", ["zip", "tgz"])
def test_round_trip_keeps_messages_flags_and_dates(server: Server, tmp_path: Path, fmt: str, archive: str) -> None:
    _fill(server, "alice")
    data = _export(server, "alice", ExportRequest(format=fmt, archive=archive))  # type: ignore[arg-type]
    upload = tmp_path / f"export.{archive}"
    upload.write_bytes(data)
    _add_bob(server)
    seen: list[ImportProgress] = []
    outcome = result(import_upload(server, "bob", upload, progress=seen.append))
    assert outcome.messages == 5 and outcome.skipped == 0, outcome.problems
    assert outcome.mailboxes == ["INBOX", "Lists/Go", "Sent"]
    assert _content(server, "bob") == _content(server, "alice")
    assert seen[-1].read == seen[-1].total == len(data) and seen[-1].messages == 5


def test_export_of_one_mailbox_in_chunks(server: Server, tmp_path: Path) -> None:
    store = server.stores.open("alice")
    big = b"x" * 70 + b"\r\n"
    for n in range(40):  # ~1.2 MB of incompressible-enough text in several chunks
        result(store.append("INBOX", _msg(n, big * (200 + n) + str(n).encode() * 3000)))
    result(store.append("Sent", _msg(99)))
    export = result(open_export(server, "alice", ExportRequest(format="mbox", archive="zip", mailbox="INBOX")))
    sizes = []
    while chunk := result(export.next_chunk()):
        sizes.append(len(chunk))
    assert len(sizes) >= 1 and max(sizes) < CHUNK + 256 * 1024
    assert export.exported == 40 and export.filename.endswith(".zip") and "INBOX" in export.filename
    with pytest.raises(NotFound):
        result(open_export(server, "alice", ExportRequest(mailbox="Nope")))


def test_maildir_export_is_a_valid_maildir(server: Server) -> None:
    _fill(server, "alice")
    data = _export(server, "alice", ExportRequest(format="maildir", archive="tgz"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert {"INBOX/cur", "INBOX/new", "INBOX/tmp"} <= set(names)
        keywords = tar.extractfile("INBOX/dovecot-keywords")
        assert keywords is not None and keywords.read() == b"0 $Forwarded\n"
        flagged = [n for n in names if n.startswith("INBOX/cur/") and n.endswith(":2,Fa")]
        assert len(flagged) == 1 and flagged[0].split("/")[-1].startswith(str(int(WHEN.timestamp())))


def _tgz(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


MBOX = (
    b"From someone@example.com Sat Jan  3 01:05:34 1996\n"
    b"Status: RO\nX-Status: F\nX-Keywords: Work\nSubject: one\nX-Other: kept\n\nHello\n>From quoted\n\n"
    b"From someone@example.com Sat Jan  3 01:05:35 1996\n"
    b"Subject: two\n\nBye\n"
)


def test_plain_mbox_from_other_tools(server: Server, tmp_path: Path) -> None:
    upload = tmp_path / "mail.mbox"
    upload.write_bytes(MBOX)
    outcome = result(import_upload(server, "alice", upload, default_mailbox="Archive"))
    assert outcome.messages == 2 and outcome.mailboxes == ["Archive"]
    store = server.stores.open("alice")
    first, second = store.messages(store.mailbox("Archive").id)
    assert store.read(first.message_id) == b"Subject: one\r\nX-Other: kept\r\n\r\nHello\r\nFrom quoted\r\n"
    assert first.flags == {"\\Seen", "\\Flagged", "Work"}
    assert first.internal_date == datetime.datetime(1996, 1, 3, 1, 5, 34, tzinfo=datetime.UTC)
    assert store.read(second.message_id) == b"Subject: two\r\n\r\nBye\r\n" and not second.flags


def test_gzipped_mbox_and_maildir_tree_from_other_tools(server: Server, tmp_path: Path) -> None:
    upload = tmp_path / "mail.mbox.gz"
    upload.write_bytes(gzip.compress(MBOX))
    assert result(import_upload(server, "alice", upload)).messages == 2
    tree = {
        "Maildir/cur/1700000000.x.host:2,RS": b"Subject: a\n\nA\n",
        "Maildir/new/1700000001.y.host": b"Subject: b\n\nB\n",
        "Maildir/tmp/partial": b"Subject: c\n\n",
        "Maildir/.Lists.Go/cur/1700000002.z.host:2,Sa": b"Subject: d\n\nD\n",
        "Maildir/.Lists.Go/dovecot-keywords": b"0 Project\n",
        "Maildir/dovecot-uidlist": b"3 V1 N4\n",
        "notes.txt": b"not mail",
    }
    upload = tmp_path / "maildir.zip"
    # dovecot-keywords must come before the messages it names in a stream; zip keeps our order.
    ordered = dict(sorted(tree.items(), key=lambda kv: not kv[0].endswith("dovecot-keywords")))
    upload.write_bytes(_zip(ordered))
    outcome = result(import_upload(server, "alice", upload))
    assert outcome.messages == 3 and outcome.skipped == 1 and "notes.txt" in outcome.problems[0]
    # A folder named Maildir is the root (INBOX), its Maildir++ folders the others.
    assert outcome.mailboxes == ["INBOX", "Lists/Go"]
    store = server.stores.open("alice")
    (go,) = store.messages(store.mailbox("Lists/Go").id)
    assert go.flags == {"\\Seen", "Project"} and store.read(go.message_id) == b"Subject: d\r\n\r\nD\r\n"
    assert go.internal_date == datetime.datetime.fromtimestamp(1700000002, datetime.UTC)


def test_mailbox_names_from_paths() -> None:
    assert mailbox_name((), "INBOX") == "INBOX"
    assert mailbox_name(("inbox",), "X") == "INBOX"
    assert mailbox_name((".Lists.Go",), "X") == "Lists/Go"
    assert mailbox_name(("home", "Maildir", ".Lists.Go"), "X") == "Lists/Go"
    assert mailbox_name(("Maildir",), "INBOX") == "INBOX"
    assert mailbox_name(("Lists", "Go"), "X") == "Lists/Go"


@pytest.mark.parametrize("name", ["../evil.mbox", "/etc/passwd", "a/../../b.mbox", "C:/x.mbox", "a\\..\\b.mbox"])
def test_unsafe_paths_refuse_the_archive(server: Server, tmp_path: Path, name: str) -> None:
    for kind, data in (("zip", _zip({"ok.mbox": MBOX, name: MBOX})), ("tgz", _tgz({name: MBOX}))):
        upload = tmp_path / f"evil.{kind}"
        upload.write_bytes(data)
        with pytest.raises(InvalidInput, match="unsafe path"):
            result(import_upload(server, "alice", upload))
    # Nothing from the zip was imported: its paths are checked before any message is read.
    store = server.stores.open("alice")
    assert store.mailbox("INBOX").messages == 0


def test_zip_bomb_stops_at_the_uncompressed_limit(server: Server, tmp_path: Path) -> None:
    # 50 MB of one repeated line compresses to ~50 KB; declared sizes are not trusted either.
    line = b"x" * 1000 + b"\n"
    body = b"From a@b Sat Jan  3 01:05:34 1996\nSubject: bomb\n\n" + line * 50_000
    upload = tmp_path / "bomb.zip"
    upload.write_bytes(_zip({"a.mbox": body}))
    assert upload.stat().st_size < 1_000_000
    with pytest.raises(LimitExceeded, match="unpacks to more"):
        result(import_upload(server, "alice", upload, limits=ArchiveLimits(max_uncompressed=10_000_000)))
    upload = tmp_path / "bomb.tgz"
    upload.write_bytes(_tgz({"a.mbox": body}))
    with pytest.raises(LimitExceeded, match="unpacks to more"):
        result(import_upload(server, "alice", upload, limits=ArchiveLimits(max_uncompressed=10_000_000)))


def test_entry_count_limit(server: Server, tmp_path: Path) -> None:
    files = {f"INBOX/cur/{n}.x:2,S": b"Subject: s\n\nx\n" for n in range(30)}
    for kind, data in (("zip", _zip(files)), ("tgz", _tgz(files))):
        upload = tmp_path / f"many.{kind}"
        upload.write_bytes(data)
        with pytest.raises(LimitExceeded, match="more than 20 entries"):
            result(import_upload(server, "alice", upload, limits=ArchiveLimits(max_entries=20)))


def test_oversized_message_is_skipped_and_reported(server: Server, tmp_path: Path) -> None:
    limit = server.config.limits.max_message_size
    big = b"From a@b Sat Jan  3 01:05:34 1996\nSubject: big\n\n" + (b"y" * 999 + b"\n") * (limit // 1000 + 2)
    upload = tmp_path / "big.mbox"
    upload.write_bytes(big + b"\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: small\n\nok\n")
    outcome = result(import_upload(server, "alice", upload))
    assert outcome.messages == 1 and outcome.skipped == 1 and "larger than" in outcome.problems[0]


def test_quota_stops_the_import(server: Server, tmp_path: Path) -> None:
    accounts.set_quota(server, accounts.SetQuota(account="alice", quota=300))
    upload = tmp_path / "m.mbox"
    upload.write_bytes(MBOX * 5)
    with pytest.raises(LimitExceeded, match="quota"):
        result(import_upload(server, "alice", upload))


@pytest.mark.parametrize("data", [b"PK\x03\x04garbage" * 10, b"\x1f\x8b\x08\x00garbage", b""])
def test_damaged_or_empty_uploads(server: Server, tmp_path: Path, data: bytes) -> None:
    upload = tmp_path / "bad"
    upload.write_bytes(data)
    if data:
        with pytest.raises(InvalidInput):
            result(import_upload(server, "alice", upload))
    else:
        assert result(import_upload(server, "alice", upload)).messages == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=3000),
        st.lists(st.binary(max_size=200), max_size=20).map(lambda parts: b"From x\n" + b"\n".join(parts)),
        st.binary(max_size=2000).map(lambda b: _zip({"a.mbox": b"From x\n" + b, "b/cur/1:2,S": b})),
        st.binary(max_size=2000).map(lambda b: _tgz({"a.mbox": b})[: max(10, len(b) // 2)]),
        st.binary(max_size=500).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=500).map(lambda b: b"\x1f\x8b" + b),
    )
)
def test_any_upload_is_imported_or_refused_cleanly(server: Server, tmp_path: Path, data: bytes) -> None:
    upload = tmp_path / "fuzz"
    upload.write_bytes(data)
    try:
        outcome = result(import_upload(server, "alice", upload))
    except (InvalidInput, LimitExceeded):
        return
    assert outcome.messages >= 0 and len(outcome.problems) <= 50
