"""The queue's transports through ops (mailsrv/ops/queue.py) over the real SQLite queue: the
routes' choice recorded when a message is queued, the transport filter in listings and bulk
actions, changing the transport of a selection and handing it back to the routes, the refusals,
and the configured transports as the admin sees them (no password)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.address import Address
from mailsrv.config.transports import DIRECT, RouteConfig, TransportConfig, TransportsConfig
from mailsrv.ops import queue as ops_queue
from mailsrv.ops.errors import InvalidInput
from mailsrv.queue.interfaces import LOCAL_TRANSPORT, MessageMeta
from mailsrv.queue.routes import Routes
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.server import Server
from tests.ops.world import make_server, result

TRANSPORTS = TransportsConfig(
    {
        DIRECT: TransportConfig(DIRECT, "direct"),
        "provider": TransportConfig(
            "provider", "submissions", host="smtp.provider.example", port=465, username="me", password="pw"
        ),
        "backup": TransportConfig("backup", "smtp", host="192.0.2.9", port=25, tls="opportunistic", tls_verify=False),
    },
    (RouteConfig("provider", recipient_domains=frozenset({"far.example"})),),
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path, transports=TRANSPORTS)
    assert isinstance(s.queue, SQLiteOutgoingQueue)
    s.queue.routes = Routes(TRANSPORTS)  # what the queue service does at start
    yield s
    s.close()


def _enqueue(server: Server, *recipients: str) -> int:
    rcpts = [Address.parse(r) for r in recipients]
    sender = Address.parse("alice@example.org")
    return result(server.queue.enqueue(sender, rcpts, b"Subject: x\r\n\r\nx\r\n", "alice", False))


def _transports(server: Server, message_id: int) -> list[tuple[str, str, bool]]:
    page = result(ops_queue.list_queue(server, ops_queue.ListMessages(ids=[message_id])))
    return [(r.address, r.transport, r.transport_fixed) for r in page.messages[0].recipients]


def _ids(server: Server, **selection: object) -> list[int]:
    page = result(ops_queue.list_queue(server, ops_queue.ListMessages(**selection)))  # type: ignore[arg-type]
    return [m.id for m in page.messages]


def test_the_routes_choice_is_recorded_when_queued_and_filtered_on(server: Server) -> None:
    both = _enqueue(server, "a@far.example", "b@near.example")
    near = _enqueue(server, "c@near.example")
    assert _transports(server, both) == [("a@far.example", "provider", False), ("b@near.example", "direct", False)]
    assert _ids(server, transport="provider") == [both]
    assert _ids(server, transport="direct") == [both, near]
    assert _ids(server, transport="backup") == []
    # Bulk actions take the same filter.
    assert result(ops_queue.hold(server, ops_queue.Selection(transport="provider"))).count == 1
    assert _ids(server, held=True) == [both]


def test_change_transport_of_a_selection_and_back_to_the_routes(server: Server) -> None:
    first = _enqueue(server, "a@far.example", "b@near.example")
    second = _enqueue(server, "c@near.example")
    changed = result(ops_queue.set_transport(server, ops_queue.SetTransport(ids=[first], to="backup")))
    assert changed.count == 2  # recipients
    assert _transports(server, first) == [("a@far.example", "backup", True), ("b@near.example", "backup", True)]
    assert _transports(server, second) == [("c@near.example", "direct", False)]
    assert _ids(server, transport="backup") == [first]
    # By filter: every message whose recipients go direct (only the second now).
    assert result(ops_queue.set_transport(server, ops_queue.SetTransport(transport="direct", to="provider"))).count == 1
    assert _transports(server, second) == [("c@near.example", "provider", True)]
    back = result(ops_queue.set_transport(server, ops_queue.SetTransport(ids=[first, second], to="routes")))
    assert back.count == 3
    assert _transports(server, first) == [("a@far.example", "provider", False), ("b@near.example", "direct", False)]
    assert _transports(server, second) == [("c@near.example", "direct", False)]


def test_unknown_transport_is_refused_with_the_field(server: Server) -> None:
    _enqueue(server, "a@far.example")
    with pytest.raises(InvalidInput) as e:
        result(ops_queue.set_transport(server, ops_queue.SetTransport(to="nosuch")))
    assert e.value.field == "to" and "direct, provider, backup or routes" in str(e.value)


def test_only_queued_recipients_change(server: Server) -> None:
    message_id = _enqueue(server, "a@far.example", "b@near.example")
    q = server.queue
    assert isinstance(q, SQLiteOutgoingQueue)
    q.db.execute("UPDATE recipient SET status = 'delivered' WHERE address = 'a@far.example'")
    q.db.commit()
    assert result(ops_queue.set_transport(server, ops_queue.SetTransport(ids=[message_id], to="backup"))).count == 1
    assert _transports(server, message_id) == [("a@far.example", "provider", False), ("b@near.example", "backup", True)]


def test_transports_as_the_admin_sees_them(server: Server) -> None:
    shown = ops_queue.transports(server, ops_queue.ListTransports())
    assert [(t.name, t.kind, t.host, t.port, t.login, t.tls_verify) for t in shown] == [
        ("direct", "direct", "", 0, False, False),
        ("provider", "submissions", "smtp.provider.example", 465, True, True),
        ("backup", "smtp", "192.0.2.9", 25, False, False),
    ]
    assert "pw" not in repr(shown)


def test_send_laters_local_recipients_keep_their_transport(server: Server) -> None:
    rcpts = [Address.parse("bob@example.org"), Address.parse("a@far.example")]
    meta = MessageMeta(local_recipients=("bob@example.org",), release_at=4e9)
    sender = Address.parse("alice@example.org")
    message_id = result(server.queue.enqueue(sender, rcpts, b"Subject: x\r\n\r\nx\r\n", "alice", False, meta=meta))
    assert _transports(server, message_id) == [
        ("bob@example.org", LOCAL_TRANSPORT, True),
        ("a@far.example", "provider", False),
    ]
    assert result(ops_queue.set_transport(server, ops_queue.SetTransport(ids=[message_id], to="backup"))).count == 1
    assert result(ops_queue.set_transport(server, ops_queue.SetTransport(ids=[message_id], to="routes"))).count == 1
    assert _transports(server, message_id)[0] == ("bob@example.org", LOCAL_TRANSPORT, True)
