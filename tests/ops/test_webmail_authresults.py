"""Reading our Authentication-Results field back (RFC 8601): comments, quoted values, only
our authserv-id, the SPF identity and DKIM d= as verified domains."""

from __future__ import annotations

from mailsrv.ops.webmail_authresults import parse_results, verdict

OURS = (
    'mail.example.org; spf=pass (sender (nested) ok) smtp.mailfrom="bounce@Lists.Example.net";\r\n\t'
    "dkim=fail (bad sig) header.d=other.example header.s=x; dkim=pass header.d=example.net;\r\n\t"
    "dmarc=pass policy.dmarc=reject header.from=example.net"
)


def test_parse_with_comments_and_quotes() -> None:
    authserv, results = parse_results(OURS)
    assert authserv == "mail.example.org"
    assert [(m, r) for m, r, _ in results] == [("spf", "pass"), ("dkim", "fail"), ("dkim", "pass"), ("dmarc", "pass")]
    assert results[0][2]["smtp.mailfrom"] == "bounce@Lists.Example.net"


def test_verdict_only_from_our_field() -> None:
    theirs = "mx.elsewhere.example; spf=pass smtp.mailfrom=evil.example; dmarc=pass header.from=bank.example"
    v = verdict([theirs, OURS], "mail.example.org", "example.net")
    assert (v.spf, v.spf_domain, v.dmarc, v.from_verified) == ("pass", "lists.example.net", "pass", True)
    assert v.verified_domains == ["lists.example.net", "example.net"]
    assert [(d.result, d.domain) for d in v.dkim] == [("fail", "other.example"), ("pass", "example.net")]
    assert verdict([theirs], "mail.example.org", "bank.example").spf == ""


def test_from_verified_without_dmarc_by_an_exact_verified_domain() -> None:
    field = "mail.example.org; spf=pass smtp.mailfrom=example.com; dkim=none; dmarc=none header.from=example.com"
    assert verdict([field], "mail.example.org", "example.com").from_verified
    assert not verdict([field], "mail.example.org", "sub.example.com").from_verified
    assert not verdict(
        ["mail.example.org; spf=fail smtp.mailfrom=x.example"], "mail.example.org", "x.example"
    ).from_verified


def test_garbage_is_harmless() -> None:
    assert parse_results("") == ("", [])
    assert parse_results('mail.example.org; ((((; "unterminated; spf')[0] == "mail.example.org"
    verdict(["x" * 100_000], "mail.example.org", "")
