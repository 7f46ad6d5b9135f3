"""SCRAM-*-PLUS over real TLS: a Twisted server with TLSContexts takes its channel
bindings from the transport; an independent client (pyOpenSSL socket + scramp) computes
its own: tls-exporter from the TLS 1.3 keying material, tls-server-end-point from the
certificate it received."""

from __future__ import annotations

import base64
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import scramp
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from mailsrv.auth.interfaces import AccountProvider, AuthError
from mailsrv.config.types import TLSKeyPair
from mailsrv.sasl import Challenge, SASLError, ServerMechanism, Success, advertised_mechanisms, make_server_mechanism
from mailsrv.tlsutil import ChannelBindings, TLSContexts, channel_bindings, generate_self_signed
from tests.auth.fixtures import make_world

R: Any = reactor


@implementer(IHandshakeListener)
class MiniAuth(LineReceiver):
    """ "AUTH <mech> [<b64>]" then base64 lines; answers "+ <b64>", "OK <b64>" or "NO <why>"."""

    def __init__(self, provider: AccountProvider) -> None:
        self.provider = provider
        self.bindings = ChannelBindings()
        self.mech: ServerMechanism | None = None

    def handshakeCompleted(self) -> None:
        self.bindings = channel_bindings(self.transport)
        self.sendLine(" ".join(advertised_mechanisms(True, True, False)).encode())

    def lineReceived(self, line: bytes) -> None:
        self.pauseProducing()
        try:
            if self.mech is None:
                parts = line.split(b" ")
                self.mech = make_server_mechanism(parts[1].decode(), self.provider, self.bindings)
                d = self.mech.start(base64.b64decode(parts[2]) if len(parts) > 2 else None)
            else:
                d = self.mech.respond(base64.b64decode(line))
        except SASLError as e:
            self.sendLine(f"NO {e}".encode())
            self.resumeProducing()
            return
        d.addCallbacks(self.step, self.failed)

    def step(self, step: Challenge | Success) -> None:
        if isinstance(step, Challenge):
            self.sendLine(b"+ " + base64.b64encode(step.data))
        else:
            self.sendLine(f"OK {step.identity.account} ".encode() + base64.b64encode(step.final_data or b""))
        self.resumeProducing()

    def failed(self, failure: Any) -> None:
        failure.trap(SASLError, AuthError)
        self.sendLine(f"NO {failure.value}".encode())
        self.mech = None
        self.resumeProducing()


def client(
    port: int,
    mech: str,
    cb_type: str | None,
    tls12: bool = False,
    password: str = "correct horse",
    override_flag: bytes | None = None,
) -> tuple[str, list[str]]:
    ctx = SSL.Context(SSL.TLS_METHOD)
    if tls12:
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(True)  # pyOpenSSL raises WantRead on sockets with a timeout
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(b"mail.example.org")
    conn.set_connect_state()
    conn.do_handshake()
    buf = b""

    def readline() -> str:
        nonlocal buf
        while b"\r\n" not in buf:
            buf += conn.recv(4096)
        line, _, buf = buf.partition(b"\r\n")
        return line.decode()

    offered = readline().split()
    binding = None
    if cb_type == "tls-exporter":
        binding = (cb_type, conn.export_keying_material(b"EXPORTER-Channel-Binding", 32))
    elif cb_type == "tls-server-end-point":
        der = conn.get_peer_certificate().to_cryptography().public_bytes(serialization.Encoding.DER)  # type: ignore[union-attr]
        binding = (cb_type, bytes(scramp.core.CBindData.from_der(der)))
    c = scramp.ScramClient([mech], "alice", password, channel_binding=binding)
    first = c.get_client_first().encode()
    if override_flag is not None:
        first = override_flag + first[1:]
    conn.sendall(f"AUTH {mech} ".encode() + base64.b64encode(first) + b"\r\n")
    reply = readline()
    if reply.startswith("+ "):
        c.set_server_first(base64.b64decode(reply[2:]).decode())
        conn.sendall(base64.b64encode(c.get_client_final().encode()) + b"\r\n")
        reply = readline()
        if reply.startswith("OK "):
            c.set_server_final(base64.b64decode(reply.split(" ")[2]).decode())
    conn.shutdown()
    conn.close()
    return reply, offered


class ScramPlusOverTLSTests(TestCase):
    def setUp(self) -> None:
        # scramp refuses the tls-exporter name; the SCRAM computation is unaffected.
        self.patch(scramp.core.CbName, "SUPPORTED_TYPES", scramp.core.CbName.SUPPORTED_TYPES | {"tls-exporter"})
        self.patch(scramp.core.CbName, "UNSUPPORTED_TYPES", frozenset())
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-plus-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        _, creds, provider = make_world(self.dir)
        self.addCleanup(creds.close)
        for kind in ("ecdsa", "rsa"):
            generate_self_signed(["mail.example.org"], self.dir / f"{kind}.crt", self.dir / f"{kind}.key", kind)
        self.ports: dict[str, int] = {}
        for kind in ("ecdsa", "rsa"):
            contexts = TLSContexts([TLSKeyPair(self.dir / f"{kind}.crt", self.dir / f"{kind}.key")])
            factory = Factory()
            factory.buildProtocol = lambda addr, provider=provider: MiniAuth(provider)  # type: ignore[method-assign, misc]
            port = R.listenSSL(0, factory, contexts, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            self.ports[kind] = port.getHost().port

    async def run_client(self, *args: Any, **kw: Any) -> tuple[str, list[str]]:
        return await deferToThread(client, *args, **kw)  # type: ignore[no-any-return]

    async def test_plus_each_binding_type_and_hash(self) -> None:
        for kind, port in self.ports.items():
            for mech in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
                for cb_type in ("tls-exporter", "tls-server-end-point"):
                    reply, offered = await self.run_client(port, mech, cb_type)
                    self.assertTrue(reply.startswith("OK alice "), (kind, mech, cb_type, reply))
                    self.assertIn(mech, offered)

    async def test_tls12_has_no_exporter_but_end_point_works(self) -> None:
        port = self.ports["ecdsa"]
        reply, _ = await self.run_client(port, "SCRAM-SHA-256-PLUS", "tls-server-end-point", tls12=True)
        self.assertTrue(reply.startswith("OK alice"), reply)
        # The client computes an exporter anyway; the server refuses the type on TLS 1.2.
        reply, _ = await self.run_client(port, "SCRAM-SHA-256-PLUS", "tls-exporter", tls12=True)
        self.assertEqual(reply, "NO unsupported channel binding type")

    async def test_wrong_password_and_downgrade(self) -> None:
        port = self.ports["rsa"]
        reply, _ = await self.run_client(port, "SCRAM-SHA-256-PLUS", "tls-exporter", password="nope")
        self.assertTrue(reply.startswith("NO"), reply)
        reply, _ = await self.run_client(port, "SCRAM-SHA-256", None, override_flag=b"y")
        self.assertEqual(reply, "NO channel binding downgrade detected")
        reply, _ = await self.run_client(port, "SCRAM-SHA-256", None)
        self.assertTrue(reply.startswith("OK alice"), reply)
