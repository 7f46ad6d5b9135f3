"""ACME (RFC 8555) against a small ACME directory this test serves: the real daemon orders a
certificate for its host name, answers HTTP-01 on its HTTP listener, installs the chain and
serves it without a restart. No Pebble on this platform (a Go program, not packaged), so the
fake server below plays the CA: nonces, account, order, authorization, the HTTP-01 check
against the daemon, finalize (signs the CSR with a test CA) and the chain download."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import josepy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mailsrv.certacme import renewal_due
from tests.certs import TestCA
from tests.daemon import wait_until, write_config


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeACME:
    """Just enough of an ACME server for one client: no signature checks (the protocol
    library is certbot's, tested there), but the HTTP-01 key authorization is checked."""

    def __init__(self, ca: TestCA, http_port: int) -> None:
        self.ca = ca
        self.http_port = http_port
        self.thumbprint = ""
        self.identifiers: list[str] = []
        self.tokens: dict[int, str] = {}
        self.valid: set[int] = set()
        self.chain = ""
        self.validated_hosts: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._reply(200, None)

            def do_GET(self) -> None:
                if self.path == "/dir":
                    self._reply(200, fake.directory())
                else:
                    self._reply(200, None)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                protected = json.loads(_b64decode(body["protected"]))
                payload = json.loads(_b64decode(body["payload"])) if body["payload"] else None
                status, answer, extra = fake.handle(self.path, protected, payload)
                self._reply(status, answer, extra)

            def _reply(self, status: int, answer: Any, extra: dict[str, str] | None = None) -> None:
                data = b""
                ctype = "application/json"
                if isinstance(answer, str):
                    data, ctype = answer.encode(), "application/pem-certificate-chain"
                elif answer is not None:
                    data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Replay-Nonce", base64.urlsafe_b64encode(b"n" * 16).decode().rstrip("="))
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def directory(self) -> dict[str, Any]:
        b = self.base
        return {"newNonce": b + "/nonce", "newAccount": b + "/acct", "newOrder": b + "/order", "revokeCert": b + "/r"}

    def order(self) -> dict[str, Any]:
        b = self.base
        done = len(self.valid) == len(self.identifiers)
        order: dict[str, Any] = {
            "status": "valid" if self.chain else ("ready" if done else "pending"),
            "identifiers": [{"type": "dns", "value": v} for v in self.identifiers],
            "authorizations": [f"{b}/authz/{i}" for i in range(len(self.identifiers))],
            "finalize": b + "/finalize",
        }
        if self.chain:
            order["certificate"] = b + "/cert"
        return order

    def authz(self, i: int) -> dict[str, Any]:
        status = "valid" if i in self.valid else "pending"
        return {
            "status": status,
            "identifier": {"type": "dns", "value": self.identifiers[i]},
            "challenges": [
                {"type": "http-01", "url": f"{self.base}/chall/{i}", "token": self.tokens[i], "status": status}
            ],
        }

    def handle(self, path: str, protected: dict[str, Any], payload: Any) -> tuple[int, Any, dict[str, str]]:
        if path == "/acct":
            self.thumbprint = base64.urlsafe_b64encode(josepy.JWK.from_json(protected["jwk"]).thumbprint()).decode()
            self.thumbprint = self.thumbprint.rstrip("=")
            return 201, {"status": "valid"}, {"Location": self.base + "/acct/1"}
        if path == "/order":
            self.identifiers = [i["value"] for i in payload["identifiers"]]
            self.tokens = {
                i: base64.urlsafe_b64encode(f"token-{i}-{'x' * 20}".encode()).decode().rstrip("=")
                for i in range(len(self.identifiers))
            }
            return 201, self.order(), {"Location": self.base + "/order/1"}
        if path.startswith("/authz/"):
            return 200, self.authz(int(path.rsplit("/", 1)[1])), {}
        if path.startswith("/chall/"):
            i = int(path.rsplit("/", 1)[1])
            # RFC 8555 §8.3: GET http://<domain>/.well-known/acme-challenge/<token> (on the daemon's HTTP port).
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
            conn.request("GET", f"/.well-known/acme-challenge/{self.tokens[i]}", headers={"Host": self.identifiers[i]})
            body = conn.getresponse().read().decode()
            conn.close()
            if body == f"{self.tokens[i]}.{self.thumbprint}":
                self.valid.add(i)
                self.validated_hosts.append(self.identifiers[i])
            return 200, self.authz(i)["challenges"][0], {"Link": f'<{self.base}/authz/{i}>;rel="up"'}
        if path == "/finalize":
            csr = x509.load_der_x509_csr(_b64decode(payload["csr"]))
            names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca.cert.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=90))
                .add_extension(names, critical=True)
                .sign(self.ca.key, hashes.SHA256())
            )
            self.chain = (
                cert.public_bytes(serialization.Encoding.PEM).decode()
                + self.ca.cert.public_bytes(serialization.Encoding.PEM).decode()
            )
            return 200, self.order(), {"Location": self.base + "/order/1"}
        if path == "/order/1":
            return 200, self.order(), {}
        if path == "/cert":
            return 200, self.chain, {}
        return 404, {"type": "urn:ietf:params:acme:error:malformed"}, {}


def test_daemon_obtains_and_serves_an_acme_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    fake = FakeACME(ca, http_port=0)
    try:
        acme = (
            f'\n[acme]\ndirectory_url = "{fake.base}/dir"\nhostnames = ["mail.example.org"]\nemail = "a@example.org"\n'
        )
        d = write_config(tmp_path / "d", extra_static=acme)
        fake.http_port = d.ports["http"]  # where the CA checks the HTTP-01 answer
        d.start()
        try:
            wait_until(lambda: "ACME: certificate for mail.example.org obtained" in d.log(), 60, "the ACME line")
            wait_until(lambda: "TLS certificates reloaded (ACME)" in d.log(), 10, "the reload line")
            assert fake.validated_hosts == ["mail.example.org"]
            # A client that trusts only the CA now accepts the daemon for mail.example.org.
            ctx = ssl.create_default_context(cafile=str(ca.path))
            raw = socket.create_connection(("127.0.0.1", d.ports["imaps"]), timeout=20)
            with ctx.wrap_socket(raw, server_hostname="mail.example.org") as tls:
                der = tls.getpeercert(binary_form=True)
            assert der is not None and x509.load_der_x509_certificate(der).issuer == ca.cert.subject
            assert renewal_due(d.cert_path, ("mail.example.org",), datetime.datetime.now(datetime.UTC)) is None
            assert (d.data_dir / "acme" / "account.pem").stat().st_mode & 0o077 == 0
            assert d.cert_path.with_name("key.pem").stat().st_mode & 0o077 == 0
            # The challenge answer is gone once the order is done.
            conn = http.client.HTTPConnection("127.0.0.1", d.ports["http"], timeout=10)
            conn.request("GET", f"/.well-known/acme-challenge/{fake.tokens[0]}")
            assert conn.getresponse().status == 404
            conn.close()
            assert "Traceback" not in d.log()
        finally:
            d.stop()
    finally:
        fake.close()


def test_renewal_due(tmp_path: Path) -> None:
    from mailsrv.tlsutil import generate_self_signed

    now = datetime.datetime.now(datetime.UTC)
    assert renewal_due(tmp_path / "none.pem", ("a.example",), now) == "no certificate"
    generate_self_signed(["a.example"], tmp_path / "c.pem", tmp_path / "k.pem")
    assert renewal_due(tmp_path / "c.pem", ("a.example",), now) == "self-signed"
    assert renewal_due(tmp_path / "c.pem", ("b.example",), now) == "not valid for b.example"
    ca = TestCA(tmp_path / "ca")
    ca.issue(["a.example"], tmp_path / "i.pem", tmp_path / "ik.pem")
    assert renewal_due(tmp_path / "i.pem", ("a.example",), now) is None or "expires" in str(
        renewal_due(tmp_path / "i.pem", ("a.example",), now)
    )
    assert "expires" in str(renewal_due(tmp_path / "i.pem", ("a.example",), now + datetime.timedelta(days=3650)))
