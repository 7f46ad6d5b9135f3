"""A real Server for the webmail ops tests: domain example.org, account alice (also
a.smith@example.org), account bob, alias team@example.org (alice a member, AllowMsgFrom), and
a helper that delivers a message to alice as SMTP would (rulesets, our Authentication-Results
field with the given verified domains)."""

from __future__ import annotations

from pathlib import Path

from mailsrv.address import Address
from mailsrv.ops import accounts, aliases, domains
from mailsrv.ops.delivery import DeliveryResult, Envelope, Trace, deliver, resolve_recipient
from mailsrv.ops.search import InlineScheduler
from mailsrv.ops.webmail import Webmail
from mailsrv.server import Server
from tests.ops.world import make_server, result


def webmail_server(tmp_path: Path) -> Server:
    server = make_server(tmp_path)
    domains.add(server, domains.AddDomain(domain="example.org"))
    for name in ("alice", "bob"):
        result(
            accounts.add(server, accounts.AddAccount(account=name, address=f"{name}@example.org", password="x" * 12))
        )
    server.dynamic.add_address("alice", "a.smith@example.org")
    aliases.add(
        server,
        aliases.AddAlias(
            alias="team@example.org", members=["alice@example.org"], allow_msg_from=True, post_public=True
        ),
    )
    return server


def webmail(server: Server, account: str = "alice") -> Webmail:
    return Webmail(server, account, scheduler=InlineScheduler())


def auth_results(verified: tuple[str, ...], dmarc: str = "none", from_domain: str = "") -> bytes:
    """Our Authentication-Results field: SPF pass for the first domain, DKIM pass for the rest."""
    parts = ["mail.example.org"]
    parts.append(f"spf=pass smtp.mailfrom={verified[0]}" if verified else "spf=none smtp.mailfrom=unknown")
    parts += [f"dkim=pass header.d={d} header.s=s1" for d in verified[1:]] or ["dkim=none"]
    parts.append(f"dmarc={dmarc} header.from={from_domain or 'unknown'}")
    return ("Authentication-Results: " + ";\r\n\t".join(parts) + "\r\n").encode()


async def deliver_to(
    server: Server, data: bytes, to: str = "alice@example.org", verified: tuple[str, ...] = (), dmarc: str = "none"
) -> DeliveryResult:
    envelope = Envelope(
        mail_from=Address.parse("sender@elsewhere.example"),
        trace=Trace(helo="mx.elsewhere.example", remote_ip="192.0.2.1", protocol="ESMTPS"),
        verified_domains=frozenset(verified),
    )
    envelope.recipients.append(await resolve_recipient(server, envelope, Address.parse(to)))  # type: ignore[arg-type]
    from_domain = ""
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"from:") and b"@" in line:
            from_domain = line.rsplit(b"@", 1)[1].strip(b"> ").decode()
            break
    return await deliver(server, envelope, data, auth_results(verified, dmarc, from_domain))
