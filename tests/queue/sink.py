"""A recording SMTP sink for queue tests, on 127.0.0.1 in threads: it accepts every message
and keeps one record per accepted message (Message-ID, recipients, connection) and whether
that connection then said QUIT.

Why not Postfix's smtp-sink: the crash test must tell apart a message whose session went on
to QUIT (the client had recorded the delivery: our runner commits before QUIT) from one
whose connection died after the 250 (the client crashed in the window RFC 5321 §6.1 leaves
open). smtp-sink's dumps do not say how a session ended.

`accept_delay` sleeps before each 250, so that deliveries stay in flight long enough for a
test to kill the client among them; `on_quit` runs (in the sink's thread) when QUIT arrives,
before the 221.
"""

from __future__ import annotations

import email.parser
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Accepted:
    message_id: str
    recipients: tuple[str, ...]
    connection: int
    time: float
    # The client went on after this message: QUIT, or the next MAIL on the same connection
    # (the queue reuses connections; either comes only after it committed the delivery).
    quit_after: bool = False
    data: bytes = b""  # the message as it arrived, dot-unstuffed, CRLF line ends


class RecordingSink:
    def __init__(self, port: int = 0, accept_delay: float = 0.0, on_quit: Callable[[], None] | None = None) -> None:
        self.accept_delay = accept_delay
        self.on_quit = on_quit
        self.accepted: list[Accepted] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self) -> RecordingSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> list[Accepted]:
        with self._lock:
            return list(self.accepted)

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def idle(self) -> bool:
        """No session open (every client has said QUIT or gone)."""
        with self._lock:
            return not self._conns

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._run, args=(conn, next(self._ids)), daemon=True).start()

    def _run(self, conn: socket.socket, connection: int) -> None:
        try:
            self._session(conn, connection)
        except (OSError, ValueError):
            pass  # the client went away (killed): the records say how far it got
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _session(self, conn: socket.socket, connection: int) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 sink.example ESMTP\r\n")
        rcpts: list[str] = []
        mine: list[Accepted] = []
        while True:
            line = f.readline(4096)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"HELO":
                conn.sendall(b"250 sink.example\r\n")
            elif verb == b"MAIL":
                rcpts = []
                with self._lock:
                    for record in mine:
                        record.quit_after = True
                conn.sendall(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                rcpts.append(line.decode("utf-8", "replace").split("<", 1)[1].split(">", 1)[0])
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                lines = []
                while True:
                    dl = f.readline()
                    if not dl:
                        return  # cut off inside the data: nothing accepted
                    if dl == b".\r\n":
                        break
                    lines.append(dl[1:] if dl.startswith(b".") else dl)
                headers = email.parser.BytesHeaderParser().parsebytes(b"".join(lines))
                if self.accept_delay:
                    time.sleep(self.accept_delay)
                record = Accepted(
                    str(headers.get("Message-ID", "")).strip(),
                    tuple(rcpts),
                    connection,
                    time.time(),
                    data=b"".join(lines),
                )
                # Recorded before the 250 is written: once the client can have seen it, it is here.
                with self._lock:
                    self.accepted.append(record)
                mine.append(record)
                conn.sendall(b"250 2.0.0 accepted\r\n")
            elif verb == b"QUIT":
                if self.on_quit is not None:
                    self.on_quit()
                with self._lock:
                    for record in mine:
                        record.quit_after = True
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            elif verb in (b"RSET", b"NOOP"):
                conn.sendall(b"250 2.0.0 ok\r\n")
            else:
                conn.sendall(b"502 5.5.2 not here\r\n")
