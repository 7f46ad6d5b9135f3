"""A small authoritative DNS server for tests, on 127.0.0.1 (UDP and TCP, same port) in a
background thread. Tests set records; nothing ever reaches the real DNS.

    with DNSServer() as server:
        server.add("example.org", "MX", "10 mx.example.org.")
        server.add("mx.example.org", "A", "127.0.0.1")
        resolver = Resolver(reactor, [server.address], timeout=1)

A name with no records of any type answers NXDOMAIN; a name with records of other types
answers NOERROR with no data. `servfail`, `drop` (no answer: the client times out) and
`garbage` (bytes that are no DNS message) simulate broken servers per name. With
`negative_ttl` set, negative answers carry an SOA with that TTL and minimum in the authority
section, as real authoritative servers send (RFC 2308 §3), so resolvers cache them; by default
they carry none and are not cached (tests change records between lookups).
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self, ttl: int = 300) -> None:
        self.ttl = ttl
        self.negative_ttl: int | None = None
        self.records: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()
        self.drop: set[str] = set()
        self.garbage: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        port = self._udp.getsockname()[1]
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._tcp.bind(("127.0.0.1", port))
        except OSError:  # the TCP port is taken: serve UDP only (tests rarely need TCP)
            self._tcp.close()
            self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._tcp.bind(("127.0.0.1", 0))
        self._tcp.listen(16)
        self.address = ("127.0.0.1", port)
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def nameserver(self) -> str:
        """The "ip:port" form used in `[dns] nameservers`."""
        return f"{self.address[0]}:{self.address[1]}"

    def add(self, name: str, rdtype: str, value: str) -> None:
        """Adds one record; `value` in zone-file presentation form. TXT values are given
        unquoted and split into 255-octet strings here."""
        rdtype = rdtype.upper()
        if rdtype == "TXT" and not value.startswith('"'):
            raw = value.encode()
            value = " ".join('"' + raw[i : i + 255].decode().replace('"', '\\"') + '"' for i in range(0, len(raw), 255))
            if not raw:
                value = '""'
        with self._lock:
            self.records.setdefault((_key(name), rdtype), []).append(value)

    def set(self, name: str, rdtype: str, *values: str) -> None:
        with self._lock:
            self.records.pop((_key(name), rdtype.upper()), None)
        for v in values:
            self.add(name, rdtype, v)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            for k in list(self.records):
                if k[0] == _key(name) and (rdtype is None or k[1] == rdtype.upper()):
                    del self.records[k]

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query in wire form; None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        q = query.question[0]
        name = _key(q.name.to_text())
        rdtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if name in self.drop:
                return None
            if name in self.garbage:
                return wire[:2] + b"\x81\x80\xff\xff garbage"
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            values = self.records.get((name, rdtype))
            if values is None and rdtype != "CNAME" and (name, "CNAME") in self.records:
                rdtype, values = "CNAME", self.records[(name, "CNAME")]
            if values:
                rrset = dns.rrset.from_text_list(q.name, self.ttl, dns.rdataclass.IN, rdtype, values)
                response.answer.append(rrset)
            elif not any(k[0] == name for k in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            if not values and self.negative_ttl is not None:
                soa = f"ns.invalid. hostmaster.invalid. 1 3600 600 86400 {self.negative_ttl}"
                response.authority.append(
                    dns.rrset.from_text_list(q.name, self.negative_ttl, dns.rdataclass.IN, "SOA", [soa])
                )
        return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stopped:
            try:
                wire, peer = self._udp.recvfrom(65535)
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                if len(reply) > 512:  # RFC 1035 §4.2.1: truncate, the client retries over TCP
                    short = dns.message.from_wire(reply)
                    short.answer.clear()
                    short.flags |= dns.flags.TC
                    reply = short.to_wire()
                try:
                    self._udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    head = _recv_exact(conn, 2)
                    wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                    reply = self.answer(wire)
                    if reply is None:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, EOFError):
                return

    def close(self) -> None:
        self._stopped = True
        self._udp.close()
        self._tcp.close()

    def __enter__(self) -> DNSServer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
