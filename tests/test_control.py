"""The control socket of the running daemon: malformed requests get one-line errors and the
daemon keeps serving; edits of data/dynamic.toml by hand are picked up by the reloader."""

from __future__ import annotations

import json
import socket
import time

from mailsrv.control import call
from tests.daemon import RunningDaemon


def _raw(daemon: RunningDaemon, payload: bytes) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.data_dir / "ctl.sock"))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_malformed_requests_answered_in_order(daemon: RunningDaemon) -> None:
    replies = _raw(
        daemon,
        b"not json\n"
        b"[1, 2]\n"
        b'{"command": 7}\n'
        b'{"command": "domain.list", "args": []}\n'
        b"\xff\xfe\n"
        b'{"command": "no.such.command"}\n'
        b'{"command": "domain.list"}\n',
    )
    assert len(replies) == 7
    assert all(r["ok"] is False and isinstance(r["error"], str) and "\n" not in r["error"] for r in replies[:6])
    assert replies[6]["ok"] is True
    assert replies[5]["error"] == "unknown command: no.such.command"
    assert "Traceback" not in daemon.log()


def test_too_long_request_closes_the_connection(daemon: RunningDaemon) -> None:
    try:
        replies = _raw(daemon, b"x" * (2 * 1024 * 1024) + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed while we were still sending: also a refusal
    else:
        assert replies == [{"ok": False, "error": "request too long", "code": "invalid"}]
    assert call(daemon.data_dir / "ctl.sock", "domain.list", {}) is not None


def test_hand_edit_of_dynamic_config_is_reloaded(daemon: RunningDaemon) -> None:
    dynamic = daemon.data_dir / "dynamic.toml"
    dynamic.write_text(dynamic.read_text() + '\n[domains."example.net"]\n')
    deadline = time.monotonic() + 15
    while "example.net" not in daemon.cli("domain", "list").stdout:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.3)
