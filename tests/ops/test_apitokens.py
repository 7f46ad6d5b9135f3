"""mailsrv/ops/apitokens.py and ops.login.token_login on a real Server: making, listing and
revoking tokens, their refusals, what they log in as, expiry, what a password change,
disabling and removing the account do, and what auth.db keeps."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.auth.apitokens import TOKEN_FORMAT
from mailsrv.ops import accounts, apitokens, domains
from mailsrv.ops.errors import AuthFailed, Exists, InvalidInput, LimitExceeded, NotFound, RateLimited
from mailsrv.ops.login import Peer, password_login, token_login
from mailsrv.server import Server
from tests.ops.world import make_server, result

PEER = Peer("192.0.2.1")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = make_server(tmp_path)
    domains.add(s, domains.AddDomain(domain="example.org"))
    for name in ("alice", "bob"):
        result(
            accounts.add(s, accounts.AddAccount(account=name, address=f"{name}@example.org", password=f"{name}-secret"))
        )
    yield s
    s.close()


def _add(server: Server, name: str = "app", account: str = "alice", days: int = 0) -> apitokens.NewToken:
    return result(apitokens.add(server, apitokens.AddToken(account=account, name=name, expires_days=days)))


def _login(server: Server, token: str, login: str = "alice@example.org") -> str:
    return result(token_login(server, PEER, login, token)).account


def test_a_token_logs_in_as_the_account_and_is_listed(server: Server) -> None:
    made = _add(server, "billing app")
    assert TOKEN_FORMAT.fullmatch(made.token) and apitokens.looks_like_token(made.token)
    assert made.info.name == "billing app" and made.info.expires is None and made.info.last_used is None
    assert _login(server, made.token) == "alice"
    assert _login(server, made.token, "alice") == "alice"  # the account name is a login name too
    (listed,) = apitokens.list_tokens(server, apitokens.ListTokens(account="alice"))
    assert listed.name == "billing app" and listed.last_used is not None and not listed.expired
    assert abs(listed.created - time.time()) < 60
    assert apitokens.list_tokens(server, apitokens.ListTokens(account="bob")) == []
    # Two tokens are different secrets.
    assert _add(server, "second").token != made.token


def test_refused_tokens(server: Server) -> None:
    made = _add(server)
    with pytest.raises(AuthFailed):
        _login(server, made.token, "bob@example.org")  # another account's address
    with pytest.raises(AuthFailed):
        _login(server, made.token, "nobody@example.org")
    with pytest.raises(AuthFailed):
        _login(server, made.token[:-1] + ("A" if made.token[-1] != "A" else "B"))  # unknown
    with pytest.raises(AuthFailed):
        _login(server, "alice-secret")  # a password is not a token
    with pytest.raises(AuthFailed):
        result(password_login(server, PEER, "alice@example.org", made.token))  # nor a token a password


def test_revoked_at_once(server: Server) -> None:
    made = _add(server)
    assert _login(server, made.token) == "alice"
    result(apitokens.remove(server, apitokens.TokenName(account="alice", name="app")))
    with pytest.raises(AuthFailed):
        _login(server, made.token)
    with pytest.raises(NotFound):
        apitokens.remove(server, apitokens.TokenName(account="alice", name="app"))
    with pytest.raises(NotFound):  # a name of another account's token
        _add(server, "bobs", account="bob")
        apitokens.remove(server, apitokens.TokenName(account="alice", name="bobs"))


def test_expiry(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _add(server, days=1)
    assert made.info.expires is not None and abs(made.info.expires - time.time() - 86400) < 60
    assert _login(server, made.token) == "alice"
    later = time.time() + 86400 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(AuthFailed):
        _login(server, made.token)
    (listed,) = apitokens.list_tokens(server, apitokens.ListTokens(account="alice"))
    assert listed.expired


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (apitokens.AddToken(account="alice", name=""), InvalidInput),
        (apitokens.AddToken(account="alice", name="   "), InvalidInput),
        (apitokens.AddToken(account="alice", name="x" * 65), InvalidInput),
        (apitokens.AddToken(account="alice", name="line\nbreak"), InvalidInput),
        (apitokens.AddToken(account="alice", name="ok", expires_days=-1), InvalidInput),
        (apitokens.AddToken(account="alice", name="ok", expires_days=3651), InvalidInput),
        (apitokens.AddToken(account="nobody", name="ok"), NotFound),
    ],
)
def test_add_refusals(server: Server, request_: apitokens.AddToken, error: type[Exception]) -> None:
    with pytest.raises(error):
        result(apitokens.add(server, request_))
    assert apitokens.list_tokens(server, apitokens.ListTokens(account="alice")) == []


def test_names_are_unique_per_account_and_tokens_limited(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _add(server, "app")
    with pytest.raises(Exists):
        _add(server, "app")
    _add(server, "app", account="bob")  # another account may use the name
    monkeypatch.setattr(apitokens, "MAX_TOKENS", 2)
    _add(server, "two")
    with pytest.raises(LimitExceeded):
        _add(server, "three")
    with pytest.raises(NotFound):
        apitokens.list_tokens(server, apitokens.ListTokens(account="nobody"))


def test_password_change_keeps_tokens_disabling_revokes_them(server: Server) -> None:
    made = _add(server)
    result(accounts.set_password(server, accounts.SetPassword(account="alice", password="a new password 1")))
    assert _login(server, made.token) == "alice"
    accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=True))
    with pytest.raises(AuthFailed):
        _login(server, made.token)
    accounts.set_disabled(server, accounts.SetDisabled(account="alice", disabled=False))
    with pytest.raises(AuthFailed):  # revoked, not suspended
        _login(server, made.token)
    assert apitokens.list_tokens(server, apitokens.ListTokens(account="alice")) == []


def test_removing_the_account_removes_its_tokens(server: Server) -> None:
    _add(server, account="bob")
    accounts.remove(server, accounts.AccountName(account="bob"))
    assert server.credentials.api_tokens.accounts() == set()


def test_auth_db_keeps_a_keyed_hash_only(server: Server, tmp_path: Path) -> None:
    made = _add(server)
    db = sqlite3.connect(server.credentials.path)
    (stored,) = db.execute("SELECT token_hash FROM api_tokens").fetchone()
    dump = "\n".join(db.iterdump())
    assert made.token not in dump and made.token.encode().hex() not in dump
    assert bytes(stored) != hashlib.sha256(made.token.encode()).digest()
    db.close()


def test_wrong_tokens_count_as_failed_logins(server: Server) -> None:
    wrong = "mailsrv_" + "A" * 43
    limit = server.config.limits.login_failures_per_ip
    for _ in range(limit):
        with pytest.raises(AuthFailed):
            _login(server, wrong)
    with pytest.raises(RateLimited):
        _login(server, _add(server).token)


def test_uses_are_written_at_most_once_a_minute(server: Server) -> None:
    """Calls with tokens do not each write auth.db (a WAL fsync on the reactor thread); a listing
    and the daemon's stop write what was noted."""
    table = server.credentials.api_tokens
    tokens = [_add(server, f"app{i}").token for i in range(3)]
    db = server.credentials._db
    start = time.time()
    table.write_uses(start)
    before = db.total_changes
    for i in range(30):
        for token in tokens:
            assert table.lookup(token, now=start + i) is not None
    assert db.total_changes == before  # nothing written within the minute
    assert table.lookup(tokens[0], now=start + 61) is not None
    assert db.total_changes == before + 3  # one transaction for all three
    table.lookup(tokens[1], now=start + 62)
    (first, second, third) = apitokens.list_tokens(server, apitokens.ListTokens(account="alice"))
    assert (first.last_used, second.last_used, third.last_used) == (start + 61, start + 62, start + 29)
