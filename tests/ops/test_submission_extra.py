"""Extra data and fromid in submission (mailsrv/ops/submission.py, ops/delivery.py):
`X-Mox-Extra-*` fields are taken out of the message and travel, with `extra`, Message-ID and
subject, with the queued copy into its events; a fromid login address gives every remote
recipient its own queued copy with a unique MAIL FROM."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import maybeDeferred

from mailsrv.address import Address
from mailsrv.ops import submission
from mailsrv.ops.delivery import Envelope, resolve_recipient
from mailsrv.ops.errors import InvalidInput
from mailsrv.queue.store import SQLiteOutgoingQueue
from tests.ops.fakes import DYNAMIC, make_server, result_of


def inline(f: Any, *args: Any) -> Any:
    return maybeDeferred(f, *args)


def _server(tmp_path: Path, dynamic: str = DYNAMIC) -> Any:
    s = make_server(tmp_path, dynamic=dynamic)
    s.queue = SQLiteOutgoingQueue(tmp_path, run_fsync=inline, run_files=inline)
    return s


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    s = _server(tmp_path)
    yield s
    s.queue.close()


def _envelope(server: Any, *rcpts: str) -> Envelope:
    envelope = Envelope(mail_from=Address.parse("alice@example.org"), account="alice", submission=True)
    for r in rcpts:
        envelope.recipients.append(result_of(resolve_recipient(server, envelope, Address.parse(r))))
    return envelope


MESSAGE = (
    b"From: <alice@example.org>\r\nX-Mox-Extra-order-ID: 42\r\nSubject: Your order\r\n"
    b"x-mox-extra-Customer: acme\r\n  corp\r\nMessage-ID: <o42@example.org>\r\n\r\nhi\r\nX-Mox-Extra-Body: no\r\n"
)


def test_extra_fields_are_removed_and_travel_with_the_queued_copy(server: Any) -> None:
    envelope = _envelope(server, "bob@example.org", "x@remote.example")
    result = result_of(submission.submit(server, envelope, MESSAGE, None, extra={"campaign": "winter"}))
    assert result.queued and [(q.address, q.queue_id, q.fromid) for q in result.queued_recipients] == [
        ("x@remote.example", result.queued, "")
    ]
    queued = server.queue.path(result.queued).read_bytes()
    stored = server.stores.by_name["bob"].stored[0][1]
    for copy in (queued, stored):
        assert b"order-ID" not in copy and b"Customer" not in copy and b"Subject: Your order\r\n" in copy
        assert copy.endswith(b"hi\r\nX-Mox-Extra-Body: no\r\n")  # the body is not the header
    row = server.queue.db.execute(
        "SELECT header_message_id, subject, extra FROM message WHERE id = ?", (result.queued,)
    ).fetchone()
    assert row[0] == "<o42@example.org>" and row[1] == "Your order"
    assert __import__("json").loads(row[2]) == {"Order-Id": "42", "Customer": "acme corp", "Campaign": "winter"}


@pytest.mark.parametrize(
    "extra", [{"bad key": "x"}, {"k": "a\r\nb"}, {"a": "1", "A": "2"}, {f"k{i}": "v" for i in range(101)}]
)
def test_bad_extra_is_refused(server: Any, extra: dict[str, str]) -> None:
    envelope = _envelope(server, "x@remote.example")
    bad = result_of(submission.submit(server, envelope, MESSAGE, None, extra=extra))
    assert isinstance(bad, InvalidInput) and bad.field == "Extra"
    assert server.queue.db.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 0


def test_fromid_gives_each_remote_recipient_its_own_mail_from(tmp_path: Path) -> None:
    dynamic = DYNAMIC.replace(
        'addresses = ["alice@example.org"]\n',
        'addresses = ["alice@example.org", "app@example.org"]\nfromid_login_addresses = ["app@example.org"]\n',
        1,
    )
    server = _server(tmp_path, dynamic)
    envelope = _envelope(server, "x@remote.example", "y@remote.example", "bob@example.org")
    login = Address.parse("app@example.org")
    result = result_of(submission.submit(server, envelope, MESSAGE, login))
    assert [q.address for q in result.queued_recipients] == ["x@remote.example", "y@remote.example"]
    ids = {q.queue_id for q in result.queued_recipients}
    fromids = {q.fromid for q in result.queued_recipients}
    assert len(ids) == 2 and len(fromids) == 2 and all(re.fullmatch(r"[A-Za-z0-9_-]{22}", f) for f in fromids)
    for q in result.queued_recipients:
        mail_from, fromid = server.queue.db.execute(
            "SELECT mail_from, fromid FROM message WHERE id = ?", (q.queue_id,)
        ).fetchone()
        assert (mail_from, fromid) == (f"alice+{q.fromid}@example.org", q.fromid)
        assert result_of(server.queue.find_by_fromid("alice", q.fromid)) == q.queue_id
    assert result.delivered == ["bob"]
    # Another login address of the account: one copy, the plain MAIL FROM.
    envelope = _envelope(server, "x@remote.example", "y@remote.example")
    result = result_of(submission.submit(server, envelope, MESSAGE, Address.parse("alice@example.org")))
    assert {q.fromid for q in result.queued_recipients} == {""}
    assert len({q.queue_id for q in result.queued_recipients}) == 1
    server.queue.close()
