"""`mailsrv apitoken add|list|remove` on the files (no daemon; the daemon path is in
tests/web/webapi/test_webapi.py): the token printed once, the list, refusals without a
traceback, and an account disabled while the daemon was stopped losing its tokens."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon import write_config


def test_add_list_remove_and_refusals(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    made = d.cli("apitoken", "add", "alice", "ci", "--days", "3")
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[0]
    assert token.startswith("mailsrv_") and len(token) == 51 and "expires 20" in made.stdout
    (listed,) = json.loads(d.cli_ok("apitoken", "list", "alice", "--json"))
    assert listed["name"] == "ci" and listed["last_used"] is None and listed["expires"]
    assert "last used never" in d.cli_ok("apitoken", "list", "alice")
    assert token not in (d.data_dir / "auth.db").read_bytes().decode("latin-1")
    for args, text in (
        (("add", "alice", "ci"), "already"),
        (("add", "nobody", "x"), "no such account"),
        (("add", "alice", "x", "--days", "-1"), "expires_days"),
        (("remove", "alice", "other"), "no token named"),
        (("list", "nobody"), "no such account"),
    ):
        r = d.cli("apitoken", *args)
        assert r.returncode == 1 and text in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert "revoked" in d.cli_ok("apitoken", "remove", "alice", "ci")
    assert d.cli_ok("apitoken", "list", "alice") == ""


def test_disabling_the_account_removes_its_tokens(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    d.cli_ok("apitoken", "add", "alice", "ci")
    dynamic = d.data_dir / "dynamic.toml"
    dynamic.write_text(dynamic.read_text().replace('[accounts."alice"]\n', '[accounts."alice"]\ndisabled = true\n'))
    assert json.loads(d.cli_ok("apitoken", "list", "alice", "--json")) == []
