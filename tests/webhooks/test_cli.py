"""`mailsrv webhook ...` on the files (no daemon): settings, secret rotation, the queue's
listing and admin commands, fromid addresses, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon import write_config


def test_webhook_commands_on_the_files(tmp_path: Path) -> None:
    d = write_config(tmp_path / "d")
    r = d.cli("webhook", "outgoing", "alice", "https://hooks.example/out", "--events", "failed,suppressed")
    assert r.returncode == 0, r.stderr
    assert "outgoing: https://hooks.example/out (failed,suppressed)" in r.stdout
    r = d.cli("webhook", "incoming", "alice", "https://hooks.example/in", "--authorization", "Basic eDp5")
    assert "incoming: https://hooks.example/in with Authorization" in r.stdout
    secret = d.cli("webhook", "rotate", "alice").stdout.strip()
    assert secret.startswith("whsec_")
    settings = json.loads(d.cli("webhook", "settings", "alice", "--json").stdout)
    assert settings["has_secret"] is True and secret not in json.dumps(settings)
    assert settings["outgoing_events"] == ["failed", "suppressed"]
    assert json.loads(d.cli("webhook", "list", "--json").stdout) == []
    assert json.loads(d.cli("webhook", "retired", "--account", "alice", "--json").stdout) == []
    assert d.cli("webhook", "retry", "--account", "alice").stdout.strip() == "0 webhook(s) due now"
    assert "kept 7d" in d.cli("webhook", "keep", "alice", "7d").stdout
    r = d.cli("webhook", "fromid", "alice", "alice@example.org")
    assert "fromid login addresses of alice: alice@example.org" in r.stdout and "not kept" in r.stdout
    assert "(none)" in d.cli("webhook", "fromid", "alice", "--clear").stdout
    for args, error in (
        (("webhook", "outgoing", "alice", "ftp://x.example/"), "http:// or https://"),
        (("webhook", "outgoing", "alice", "https://x.example/", "--events", "bounced"), "unknown bounced"),
        (("webhook", "drop"), "give an account, webhook ids, or all"),
        (("webhook", "fromid", "alice", "bob@example.org"), "not an address of account alice"),
        (("webhook", "settings", "nobody"), "no such account"),
    ):
        r = d.cli(*args)
        assert r.returncode == 1 and error in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    # Disabling: an empty URL.
    assert "outgoing: (none)" in d.cli("webhook", "outgoing", "alice", "").stdout
    assert (d.data_dir / "webhooks.db").stat().st_mode & 0o777 == 0o600
