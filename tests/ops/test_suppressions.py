"""mailsrv/ops/suppressions.py: list, add, remove and test addresses on an account's
suppression list, by base address, with the errors an API user sees; and `mailsrv suppression`
on the files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import maybeDeferred

from mailsrv.ops import suppressions as ops
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.queue.store import SQLiteOutgoingQueue
from tests.daemon import write_config
from tests.ops.fakes import make_server, result_of


def inline(f: Any, *args: Any) -> Any:
    return maybeDeferred(f, *args)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    s = make_server(tmp_path)
    s.queue = SQLiteOutgoingQueue(tmp_path, run_fsync=inline, run_files=inline)
    yield s
    s.queue.close()


def test_add_list_present_remove_by_base_address(server: Any) -> None:
    entry = result_of(
        ops.suppression_add(server, ops.AddSuppression(account="alice", address="Bob+news@Remote.Example"))
    )
    assert (entry.base_address, entry.original_address, entry.manual) == (
        "bob@remote.example",
        "Bob+news@remote.example",
        True,
    )
    # Adding a variant again keeps the first entry.
    again = result_of(
        ops.suppression_add(server, ops.AddSuppression(account="alice", address="bob@remote.example", reason="x"))
    )
    assert again == entry
    assert [e.base_address for e in result_of(ops.suppression_list(server, ops.ListSuppressions(account="alice")))] == [
        "bob@remote.example"
    ]
    assert result_of(ops.suppression_list(server, ops.ListSuppressions(account="bob"))) == []
    present = ops.SuppressionAddress(account="alice", address="BOB+other@remote.example")
    assert result_of(ops.suppression_present(server, present)).present
    assert not result_of(
        ops.suppression_present(server, ops.SuppressionAddress(account="bob", address="bob@remote.example"))
    ).present
    result_of(ops.suppression_remove(server, present))
    assert not result_of(ops.suppression_present(server, present)).present
    assert isinstance(result_of(ops.suppression_remove(server, present)), NotFound)


def test_our_domains_use_their_own_separator(server: Any) -> None:
    entry = result_of(ops.suppression_add(server, ops.AddSuppression(account="alice", address="carol+x@example.net")))
    assert entry.base_address == "carol@example.net"


def test_bad_input(server: Any) -> None:
    bad = result_of(ops.suppression_add(server, ops.AddSuppression(account="alice", address="not an address")))
    assert isinstance(bad, InvalidInput) and bad.field == "address"
    bad = result_of(
        ops.suppression_add(server, ops.AddSuppression(account="alice", address="a@b.example", reason="x\r\ny"))
    )
    assert isinstance(bad, InvalidInput) and bad.field == "reason"
    missing = result_of(ops.suppression_list(server, ops.ListSuppressions(account="nobody")))
    assert isinstance(missing, NotFound)


def test_cli_on_the_files(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli("suppression", "add", "alice", "Someone+x@Remote.Example", "--reason", "asked to stop")
    assert r.returncode == 0, r.stderr
    assert "someone@remote.example" in r.stdout
    r = d.cli("suppression", "list", "alice")
    assert "someone@remote.example\tSomeone+x@remote.example" in r.stdout and "manual\tasked to stop" in r.stdout
    assert d.cli("suppression", "present", "alice", "someone@remote.example").returncode == 0
    r = d.cli("suppression", "rm", "alice", "someone@remote.example")
    assert r.returncode == 0, r.stderr
    r = d.cli("suppression", "present", "alice", "someone@remote.example")
    assert r.returncode == 1 and "not suppressed" in r.stdout
    r = d.cli("suppression", "rm", "alice", "someone@remote.example")
    assert r.returncode == 1 and "not on the suppression list" in r.stderr and "Traceback" not in r.stderr
