"""The MTA-STS policy of every local domain (RFC 8461 §3.2), served over HTTPS at
`https://mta-sts.<domain>/.well-known/mta-sts.txt`: the HTTPS listener routes by the Host
header. A function of the request, so the placeholder site and a later Klein site can both
mount it. The policy names this server's host name as the only MX (quickstart's MX record)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailsrv.address import AddressError, Domain

if TYPE_CHECKING:
    from mailsrv.server import Server

POLICY_PATH = b"/.well-known/mta-sts.txt"
POLICY_HOST_PREFIX = "mta-sts."


def policy_text(mx: str, mode: str, max_age: int) -> str:
    """RFC 8461 §3.2: key/value lines, CRLF (LF is allowed on reading; CRLF is the ABNF)."""
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


def policy_domain(server: Server, host_header: str) -> Domain | None:
    """The local domain whose policy host `host_header` (port removed) names, or None."""
    host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    host = host.strip().rstrip(".").lower()
    if not host.startswith(POLICY_HOST_PREFIX):
        return None
    try:
        domain = Domain.parse(host.removeprefix(POLICY_HOST_PREFIX))
    except AddressError:
        return None
    return domain if server.dynamic.is_local_domain(domain) else None


def serve_policy(server: Server, request: Any) -> bytes | None:
    """The response body for a policy request (status and headers set on `request`), or None
    when the request is not for the policy path (the site serves it otherwise)."""
    if request.path != POLICY_PATH:
        return None
    smtp = server.config.smtp
    host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
    domain = policy_domain(server, host)
    # §3.3: the policy is fetched over HTTPS only; over plain HTTP it does not exist.
    if domain is None or not request.isSecure() or smtp.mta_sts_mode == "off":
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"no MTA-STS policy here\n"
    request.setHeader(b"content-type", b"text/plain")  # §3.2: media type "text/plain"
    return policy_text(server.config.hostname.ascii, smtp.mta_sts_mode, smtp.mta_sts_max_age).encode("ascii")
