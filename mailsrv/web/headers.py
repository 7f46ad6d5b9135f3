"""The security headers every web response carries (set before a resource renders, so an
interface may replace one, e.g. webmail's CSP for sandboxed message frames)."""

from __future__ import annotations

from typing import Any

# No inline script or style, nothing from elsewhere, never framed.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def security_headers(hsts_max_age: int, secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers for one response; HSTS only over HTTPS (RFC 6797 §7.2: never over plain HTTP)."""
    headers = list(SECURITY_HEADERS)
    if secure and hsts_max_age > 0:
        headers.append((b"strict-transport-security", b"max-age=%d" % hsts_max_age))
    return headers


def set_security_headers(request: Any, hsts_max_age: int) -> None:
    for name, value in security_headers(hsts_max_age, bool(request.isSecure())):
        request.setHeader(name, value)
