"""Reading our own `Authentication-Results:` field (RFC 8601) back from a stored message: the
SPF, DKIM and DMARC verdicts the webmail shows, which domains were verified, and whether the
From: address is one of them.

Only the field bearing our authserv-id counts (RFC 8601 §5: others may be forged or belong
to another server's view); delivery renames forged ones (`ops.mailauth`). The topmost such
field is the one delivery prepended. Parsing is bounded: at most `MAX_FIELD` characters.
"""

from __future__ import annotations

import msgspec

MAX_FIELD = 8192


class DkimResult(msgspec.Struct, frozen=True):
    result: str
    domain: str


class AuthVerdict(msgspec.Struct, frozen=True):
    """What the reader is told. Results are the RFC 8601 words ("pass", "fail", "none",
    "softfail", "temperror"...); "" when the message has no field of ours (mail submitted
    here, or delivered before checks ran). `verified_domains`: the SPF-passed identity and
    the DKIM-passed domains, as delivery used them for rulesets. `from_verified`: DMARC
    passed, or the From: domain itself is verified."""

    spf: str = ""
    spf_domain: str = ""
    dkim: list[DkimResult] = []
    dmarc: str = ""
    dmarc_domain: str = ""
    verified_domains: list[str] = []
    from_verified: bool = False


def _strip_comments(text: str) -> str:
    """The field without RFC 5322 comments (nested parentheses), quoted strings kept."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            if ch == '"':
                quoted = True
            out.append(ch)
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    """Splits outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_results(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """(authserv-id, [(method, result, {ptype.property: value})]) of a field body."""
    clauses = _split(_strip_comments(value[:MAX_FIELD]), ";")
    authserv = clauses[0].split()[0].lower() if clauses[0].split() else ""
    results = []
    for clause in clauses[1:]:
        words = clause.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        props = {}
        for word in words[1:]:
            name, eq, prop_value = word.partition("=")
            if eq:
                props[name.lower()] = _unquote(prop_value)
        results.append((method.lower().split("/")[0], _unquote(result).lower(), props))
    return authserv, results


def _domain_of(identity: str) -> str:
    return identity.rpartition("@")[2].lower().rstrip(".")


def verdict(fields: list[str], authserv_id: str, from_domain: str) -> AuthVerdict:
    """The verdict from the message's `Authentication-Results:` field values (top first)."""
    ours = authserv_id.lower()
    for value in fields:
        authserv, results = parse_results(value)
        if authserv != ours:
            continue
        spf = spf_domain = dmarc = dmarc_domain = ""
        dkim: list[DkimResult] = []
        for method, result, props in results:
            if method == "spf" and not spf:
                spf = result
                spf_domain = _domain_of(props.get("smtp.mailfrom") or props.get("smtp.helo") or "")
            elif method == "dkim" and result != "none":
                dkim.append(DkimResult(result, _domain_of(props.get("header.d", ""))))
            elif method == "dmarc" and not dmarc:
                dmarc = result
                dmarc_domain = _domain_of(props.get("header.from", ""))
        verified = ([spf_domain] if spf == "pass" and spf_domain else []) + [
            d.domain for d in dkim if d.result == "pass" and d.domain
        ]
        verified = list(dict.fromkeys(verified))
        from_domain = from_domain.lower().rstrip(".")
        from_verified = dmarc == "pass" or (bool(from_domain) and from_domain in verified)
        return AuthVerdict(spf, spf_domain, dkim, dmarc, dmarc_domain, verified, from_verified)
    return AuthVerdict()
