"""Host endpoints written in configuration files: "ip", "ip:port" or "[ipv6]:port"."""

from __future__ import annotations

import ipaddress


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """(ip, port) of "ip", "ip:port", "ipv6" or "[ipv6]:port"; `default_port` when none is
    given. ValueError if the address is not an IP literal or the port is not 1-65535."""
    text = text.strip()
    port = default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad endpoint {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    else:
        host = text
    ipaddress.ip_address(host)  # raises ValueError
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, port
