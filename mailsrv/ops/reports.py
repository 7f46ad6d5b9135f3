"""Where DMARC aggregate reports (RFC 7489 §7.2) and SMTP TLS reports (RFC 8460) for local
domains are filed: a message to a domain's `dmarc_reports` or `tlsrpt_reports` address goes
to the receiving account's "DMARC reports" or "TLS reports" mailbox (created on first use),
past the rulesets and the junk filter (reports are machine mail the filter would misjudge).

The map from address key to mailbox is built once per dynamic config (a few domains), so a
delivery pays one dict lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.address import Address
from mailsrv.config.types import DynamicConfig

if TYPE_CHECKING:
    from mailsrv.server import Server

DMARC_MAILBOX = "DMARC reports"
TLS_MAILBOX = "TLS reports"

_cache: tuple[DynamicConfig, dict[str, str]] | None = None


def _addresses(config: DynamicConfig) -> dict[str, str]:
    global _cache
    cached = _cache
    if cached is not None and cached[0] is config:
        return cached[1]
    found: dict[str, str] = {}
    for d in config.domains.values():
        # One address for both kinds: DMARC's mailbox (its reports are the more frequent).
        if d.tlsrpt_reports is not None:
            found[d.tlsrpt_reports.key()] = TLS_MAILBOX
        if d.dmarc_reports is not None:
            found[d.dmarc_reports.key()] = DMARC_MAILBOX
    _cache = (config, found)
    return found


def mailbox_for(server: Server, address: Address) -> str | None:
    """The reports mailbox for mail to `address`, or None when it is no reporting address."""
    addresses = _addresses(server.dynamic.current)
    return addresses.get(address.key()) if addresses else None
