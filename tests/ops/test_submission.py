"""mailsrv/ops/submission.py and mailsrv/ops/dkim.py on their own: may-send-as for From: and the
envelope sender (issue 17 item 9, a second `From :` included), added Message-ID/Date, DKIM
signing with every selector and the log lines when a domain cannot sign (issue 17 item 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from mailsrv.address import Address
from mailsrv.dns.dkimkeys import create_domain_keys
from mailsrv.ops import dkim as ops_dkim
from mailsrv.ops import submission
from mailsrv.ops.delivery import Envelope
from mailsrv.ops.errors import InvalidInput, SendAsDenied
from tests.ops.fakes import DYNAMIC, make_server, result_of


def _server_with_keys(tmp_path: Path, *, missing: str = "") -> Any:
    records = create_domain_keys(tmp_path, "example.org", "202612")
    selectors = [sel for sel, _ in records] + ([missing] if missing else [])
    dynamic = '[domains."example.org"]\ndkim_selectors = [' + ", ".join(f'"{s}"' for s in selectors) + "]\n"
    dynamic += DYNAMIC.replace('[domains."example.org"]\n', "", 1)
    return make_server(tmp_path, dynamic=dynamic)


@pytest.fixture
def logged() -> Any:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def _text(event: dict[str, Any]) -> str:
    from twisted.logger import formatEvent

    return formatEvent(event)


# --- may send as -----------------------------------------------------------------------------------------------


def test_may_send_as_own_address_and_alias_allowing_members(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    ok = [("alice", "alice@example.org"), ("alice", "Alice+tag@example.org"), ("alice", "sales@example.org")]
    for account, address in ok:
        assert submission.may_send_as(server, account, None, Address.parse(address)), address
    refused = [("bob", "alice@example.org"), ("bob", "sales@example.org"), ("alice", "team@example.org")]
    refused += [("alice", "someone@elsewhere.example")]
    for account, address in refused:
        assert not submission.may_send_as(server, account, None, Address.parse(address)), address
    # A directory login address outside the configured accounts.
    login = Address.parse("dir@elsewhere.example")
    assert submission.may_send_as(server, "dir", login, login)


def test_envelope_sender_is_tied_to_the_account(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    submission.check_envelope_sender(server, "alice", None, Address.parse("alice@example.org"))
    submission.check_envelope_sender(server, "alice", None, None)  # the null path
    for foreign in ("bob@example.org", "ceo@elsewhere.example"):
        with pytest.raises(SendAsDenied):
            submission.check_envelope_sender(server, "alice", None, Address.parse(foreign))


@pytest.mark.parametrize(
    "head",
    [
        b"From: <alice@example.org>\r\nFrom : <bob@example.org>\r\n",  # the probe
        b"From: <alice@example.org>\r\nfrom\t: <bob@example.org>\r\n",
        b"From : <alice@example.org>\r\nFROM: <bob@example.org>\r\n",
        b"From: <alice@example.org>, <bob@example.org>\r\n",
        b"Subject: no from\r\n",
        b"From: not an address\r\n",
    ],
)
def test_from_needs_exactly_one_field_with_one_address(head: bytes) -> None:
    with pytest.raises(InvalidInput):
        submission.from_address(head + b"\r\nbody\r\n")


def test_from_with_space_before_colon_and_folding_is_read() -> None:
    data = b"Subject: x\r\nFrom :\r\n Alice\r\n <alice@example.org>\r\n\r\nFrom: <bob@example.org> in the body\r\n"
    assert str(submission.from_address(data)) == "alice@example.org"


def test_submit_refuses_a_foreign_from(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    envelope = Envelope(mail_from=Address.parse("alice@example.org"), account="alice", submission=True)
    data = b"From: <alice@example.org>\r\nFrom : <bob@example.org>\r\n\r\nhi\r\n"
    assert isinstance(result_of(submission.submit(server, envelope, data, None)), InvalidInput)
    data = b"From: <bob@example.org>\r\n\r\nhi\r\n"
    assert isinstance(result_of(submission.submit(server, envelope, data, None)), SendAsDenied)
    envelope.account = None
    assert isinstance(result_of(submission.submit(server, envelope, data, None)), SendAsDenied)


def test_submit_adds_message_id_and_date_and_delivers(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    envelope = Envelope(mail_from=Address.parse("alice@example.org"), account="alice", submission=True)
    from mailsrv.ops.delivery import resolve_recipient

    envelope.recipients.append(result_of(resolve_recipient(server, envelope, Address.parse("bob@example.org"))))
    result = result_of(submission.submit(server, envelope, b"From: <alice@example.org>\r\n\r\nhi\r\n", None))
    assert result.delivered == ["bob"]
    [(_, copy)] = server.stores.by_name["bob"].stored
    assert b"\r\nMessage-ID: <" in copy and b"@example.org>\r\nDate: " in copy
    # Present fields are kept, not added twice.
    envelope.recipients[:] = envelope.recipients[:1]
    data = b"From: <alice@example.org>\r\nMessage-Id: <x@y>\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\n\r\nhi\r\n"
    result_of(submission.submit(server, envelope, data, None))
    copy = server.stores.by_name["bob"].stored[1][1]
    assert copy.count(b"Message-I") == 1 and copy.count(b"Date:") == 1


# --- DKIM ------------------------------------------------------------------------------------------------------


def test_signs_with_every_selector(tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    server = _server_with_keys(tmp_path)
    signatures = result_of(ops_dkim.dkim_sign(server, "example.org", b"From: <alice@example.org>\r\n\r\nhi\r\n"))
    assert signatures.count(b"DKIM-Signature:") == 2
    assert b"a=ed25519-sha256" in signatures and b"a=rsa-sha256" in signatures
    assert ops_dkim.dkim_problems(server) == ["example.net: no dkim_selectors, mail leaves unsigned"]
    assert not [e for e in logged if e.get("log_level") in (LogLevel.warn, LogLevel.error)]


def test_a_missing_key_is_logged_for_every_message_and_the_rest_still_signs(
    tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    server = _server_with_keys(tmp_path, missing="gone")
    problems = ops_dkim.dkim_problems(server)
    assert len(problems) == 2 and problems[0].startswith("example.net: no dkim_selectors")
    assert problems[1].startswith("example.org: selector gone: no key file")
    for _ in range(2):
        signatures = result_of(ops_dkim.dkim_sign(server, "example.org", b"From: <alice@example.org>\r\n\r\nhi\r\n"))
        assert signatures.count(b"DKIM-Signature:") == 2
    errors = [_text(e) for e in logged if e.get("log_level") == LogLevel.error]
    assert len(errors) == 2 and all("selector gone" in e for e in errors)


def test_a_domain_without_selectors_is_logged_for_every_message(tmp_path: Path, logged: list[dict[str, Any]]) -> None:
    server = _server_with_keys(tmp_path)
    assert result_of(ops_dkim.dkim_sign(server, "example.net", b"From: <carol@example.net>\r\n\r\nhi\r\n")) == b""
    [warning] = [_text(e) for e in logged if e.get("log_level") == LogLevel.warn]
    assert "example.net leaves unsigned" in warning
    # Not our domain (a directory login address): nothing to sign with, nothing to say.
    assert result_of(ops_dkim.dkim_sign(server, "elsewhere.example", b"From: <x@elsewhere.example>\r\n\r\n")) == b""
    assert len([e for e in logged if e.get("log_level") == LogLevel.warn]) == 1


def test_create_domain_dkim_records(tmp_path: Path) -> None:
    import datetime

    records = ops_dkim.create_domain_dkim(tmp_path, "example.org", datetime.date(2026, 12, 6))
    assert [(r.selector, r.name) for r in records] == [
        ("202612e", "202612e._domainkey.example.org"),
        ("202612r", "202612r._domainkey.example.org"),
    ]
    assert records[0].value.startswith("v=DKIM1; k=ed25519; p=") and records[1].value.startswith("v=DKIM1; k=rsa; p=")
