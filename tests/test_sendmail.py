"""`mailsrv sendmail` (mailsrv/sendmail.py): flags, -t with Bcc removed, AUTH, exit codes,
and a real process reading stdin."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from mailsrv.sendmail import (
    EX_CONFIG,
    EX_OK,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    parse_args,
    read_message,
    strip_bcc,
    submit,
)
from tests.smtpclient.fakeserver import FakeSMTPServer

R: Any = reactor
MSG = b"From: u@a.example\nTo: x@b.example\nBcc: hidden@b.example,\n other@b.example\nSubject: s\n\nbody\n.\nafter\n"


def test_parse_args_and_input() -> None:
    inv = parse_args(["-oi", "-f", "me@a.example", "-FName", "-odb", "a@b.example,c@b.example", "d@b.example"])
    assert inv.ignore_dots and inv.sender == "me@a.example"
    assert inv.recipients == ("a@b.example", "c@b.example", "d@b.example")
    assert read_message(io.BytesIO(b"a\n.\nb\n"), False) == b"a\n"
    assert read_message(io.BytesIO(b"a\n.\nb\n"), True) == b"a\n.\nb\n"
    assert strip_bcc(MSG) == b"From: u@a.example\nTo: x@b.example\nSubject: s\n\nbody\n.\nafter\n"


class Submit(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.peer = FakeSMTPServer(
            extensions=("AUTH PLAIN", "PIPELINING"),
            rcpt_reply=lambda r: b"450 4.2.1 busy" if r.startswith("busy") else b"250 ok",
        )
        self.addCleanup(self.peer.close)
        (self.dir / "pass").write_text("secret\n")
        self.config = self.dir / "sendmail.toml"
        self.config.write_text(
            f'server = "127.0.0.1:{self.peer.port}"\ntls = "none"\nusername = "u"\n'
            f'password_file = "{self.dir / "pass"}"\nfrom = "u@a.example"\n'
        )

    def run_submit(self, argv: list[str], data: bytes = MSG, config: Path | None = None) -> defer.Deferred[Any]:
        return defer.ensureDeferred(submit(R, argv, io.BytesIO(data), config or self.config))

    def test_submit(self) -> defer.Deferred[None]:
        async def go() -> None:
            code, _ = await self.run_submit(["-t", "-i"])
            assert code == EX_OK
            mail_from, rcpts, data = self.peer.received[0]
            assert mail_from == "u@a.example"
            assert rcpts == ["x@b.example", "hidden@b.example", "other@b.example"]
            assert b"Bcc" not in data and b"\r\n.\r\nafter\r\n" in data
            code, text = await self.run_submit(["busy@b.example"])
            assert code == EX_TEMPFAIL and "450" in text
            code, _ = await self.run_submit([])
            assert code == EX_USAGE
            code, _ = await self.run_submit(["x@b.example"], config=self.dir / "missing.toml")
            assert code == EX_CONFIG
            (self.dir / "pass").write_text("wrong\n")
            code, text = await self.run_submit(["x@b.example"])
            assert code == EX_UNAVAILABLE and "535" in text

        return defer.ensureDeferred(go())

    def test_real_process(self) -> None:
        env = dict(os.environ, MAILSRV_SENDMAIL_CONFIG=str(self.config))
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from mailsrv.sendmail import main; sys.exit(main(sys.argv[1:]))",
                "y@b.example",
            ],
            input=b"Subject: cli\n\nfrom a pipe\n",
            env=env,
            capture_output=True,
            timeout=30,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.returncode == 0, proc.stderr
        assert self.peer.received[-1][1] == ["y@b.example"] and self.peer.received[-1][2].endswith(b"from a pipe\r\n")
