"""The MTA-STS policy of every local domain (RFC 8461 §3.2), served over HTTPS at
`https://mta-sts.<domain>/.well-known/mta-sts.txt`: the HTTPS listener routes by the Host
header. A function of the request, so the placeholder site and a later Klein site can both
mount it. The policy names this server's host name as the only MX (quickstart's MX record);
its mode and max_age are the domain's own or `[smtp]`'s (`mailsrv.ops.domains.mta_sts_policy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailsrv.address import AddressError, Domain
from mailsrv.ops.domains import mta_sts_policy

if TYPE_CHECKING:
    from mailsrv.server import Server

POLICY_PATH = b"/.well-known/mta-sts.txt"
POLICY_HOST_PREFIX = "mta-sts."


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
    host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
    domain = policy_domain(server, host)
    config = server.dynamic.current.domains.get(domain.ascii) if domain is not None else None
    policy = mta_sts_policy(server.config, config) if config is not None else None
    # §3.3: the policy is fetched over HTTPS only; over plain HTTP it does not exist.
    if policy is None or not request.isSecure() or not policy.text:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"no MTA-STS policy here\n"
    request.setHeader(b"content-type", b"text/plain")  # §3.2: media type "text/plain"
    return policy.text.encode("ascii")
