"""A scriptable SMTP server for client tests, on 127.0.0.1 in a thread: it can misbehave in
the ways real peers do (garbage, silence, dropped connections, mixed RCPT replies) and
offers STARTTLS with a self-signed certificate."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class FakeSMTPServer:
    """`behaviour` (a name, see `_session`) picks the misbehaviour; `received` gets
    (mail_from, rcpts, data) for each completed message."""

    def __init__(
        self,
        behaviour: str = "good",
        extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 100000"),
        tls_files: tuple[Path, Path] | None = None,
        rcpt_reply: Callable[[str], bytes] = lambda r: b"250 2.1.5 ok",
    ) -> None:
        self.behaviour = behaviour
        self.extensions = extensions
        self.rcpt_reply = rcpt_reply
        self.received: list[tuple[str, list[str], bytes]] = []
        self.commands: list[str] = []
        self.tls_context: ssl.SSLContext | None = None
        if tls_files is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self._session(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _session(self, conn: socket.socket) -> None:
        b = self.behaviour
        if b == "implicit-tls":
            assert self.tls_context is not None
            conn = self.tls_context.wrap_socket(conn, server_side=True)
        if b == "silent":
            conn.recv(1)  # never greet; the client times out
            return
        if b == "garbage-greeting":
            conn.sendall(b"HELLO THERE I AM NOT SMTP\r\n")
            conn.recv(100)
            return
        if b == "refuse-service":
            conn.sendall(b"554 5.7.1 no service for you\r\n")
            conn.recv(100)
            return
        conn.sendall(b"220 fake.example ESMTP\r\n")
        f: BinaryIO = conn.makefile("rb")
        tls = False
        mail_from, rcpts = "", []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if b == "no-ehlo":
                    conn.sendall(b"502 5.5.1 what\r\n")
                    continue
                exts = list(self.extensions)
                if self.tls_context is not None and not tls and b != "implicit-tls":
                    exts.append("STARTTLS")
                lines = ["fake.example", *exts]
                conn.sendall(
                    "".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n" for i, x in enumerate(lines)).encode()
                )
            elif verb == "HELO":
                conn.sendall(b"250 fake.example\r\n")
            elif verb == "STARTTLS" and self.tls_context is not None:
                conn.sendall(b"220 2.0.0 go ahead\r\n")
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                tls = True
            elif verb == "MAIL":
                if b == "garbage-after-mail":
                    conn.sendall(b"250 ok\r\nxyz\r\n\x00\xff\r\n")
                    continue
                mail_from, rcpts = cmd[10:].split(">")[0].lstrip("<"), []
                conn.sendall(b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                r = cmd[8:].split(">")[0].lstrip("<")
                reply = self.rcpt_reply(r)
                if reply.startswith(b"2"):
                    rcpts.append(r)
                conn.sendall(reply + b"\r\n")
            elif verb == "DATA":
                if not rcpts:
                    conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                    continue
                conn.sendall(b"354 go\r\n")
                data = b""
                while True:
                    dl = f.readline()
                    if not dl:
                        return
                    if b == "drop-mid-data" and len(data) > 10:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    if dl == b".\r\n":
                        break
                    data += dl[1:] if dl.startswith(b".") else dl
                if b == "reject-data":
                    conn.sendall(b"554 5.7.1 content refused\r\n")
                    continue
                if b == "tempfail-data":
                    conn.sendall(b"451 4.3.0 try later\r\n")
                    continue
                self.received.append((mail_from, rcpts, data))
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            elif verb == "AUTH":
                parts = cmd.split(" ")
                ok = len(parts) == 3 and parts[1].upper() == "PLAIN" and base64.b64decode(parts[2]) == b"\0u\0secret"
                conn.sendall(b"235 2.7.0 ok\r\n" if ok else b"535 5.7.8 bad credentials\r\n")
            elif verb == "RSET":
                conn.sendall(b"250 ok\r\n")
            else:
                conn.sendall(b"500 5.5.2 unknown\r\n")
