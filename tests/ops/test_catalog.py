"""ops.catalog: running an operation by name from a JSON object, as the control socket does."""

from __future__ import annotations

import pytest

from mailsrv.ops import catalog
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.server import Server
from tests.ops.world import result


def test_runs_by_name_with_json_in_and_out(server: Server) -> None:
    assert result(
        catalog.run(server, "alias.add", {"alias": "team@example.org", "members": ["alice@example.org"]})
    ) == {
        "alias": "team@example.org",
        "members": ["alice@example.org"],
        "post_public": False,
        "list_members": False,
        "allow_msg_from": False,
    }
    (listed,) = result(catalog.run(server, "domain.list", {}))
    assert {k: listed[k] for k in ("domain", "unicode", "separator", "dmarc_reports")} == {
        "domain": "example.org",
        "unicode": "example.org",
        "separator": "+",
        "dmarc_reports": "",
    }
    assert listed["mta_sts"]["mode"] == "testing"  # JSON all the way down
    # An in_thread operation (the reactor's pool runs it inline here).
    assert result(catalog.run(server, "account.setquota", {"account": "alice", "quota": 5})) == {"quota": 5}
    assert result(catalog.run(server, "account.rm", {"account": "alice"})) == {}


def test_refusals(server: Server) -> None:
    with pytest.raises(NotFound, match=r"unknown command: no\.such"):
        catalog.run(server, "no.such", {})
    with pytest.raises(InvalidInput, match=r"account\.setquota.*quota"):
        catalog.run(server, "account.setquota", {"account": "alice", "quota": "lots"})
    with pytest.raises(InvalidInput, match="missing required field `account`"):
        catalog.run(server, "account.rm", {})
    with pytest.raises(NotFound):
        result(catalog.run(server, "account.rm", {"account": "nobody"}))


def test_every_operation_has_a_struct_and_a_summary() -> None:
    for name, op in catalog.OPERATIONS.items():
        assert op.name == name and op.summary, name
