"""mailsrv/message/aggregatereports.py: DMARC (XML; gzip, zip or plain) and TLS (JSON, gzip)
reports read from messages and summarised, and every bound: zip and gzip bombs stop at
MAX_REPORT, a DTD is refused, other junk is a ReportError."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from mailsrv.message import aggregatereports as ar
from tests.message.reportsamples import (
    dmarc_message,
    dmarc_xml,
    report_message,
    tlsrpt_message,
    zipped,
)


def test_dmarc_report_gzipped() -> None:
    summary = ar.read_report(dmarc_message(), "dmarc")
    assert isinstance(summary, ar.DMARCSummary)
    assert (summary.org, summary.report_id, summary.domain) == ("reporter.example", "r-1", "example.org")
    assert (summary.begin, summary.end, summary.messages, summary.passed, summary.failed) == (
        1796515200,
        1796601599,
        15,
        12,
        3,
    )
    # Failing sources first.
    assert [(s.ip, s.count, s.disposition, s.dkim, s.spf) for s in summary.sources] == [
        ("198.51.100.7", 3, "reject", "fail", "fail"),
        ("192.0.2.10", 12, "none", "pass", "pass"),
    ]


# Built in the test, not in the parameters: gzip and zip embed the time, and xdist workers must
# collect the same test ids.
_FORMS = {
    "zip": (lambda: zipped("report.xml", dmarc_xml()), "application/zip"),
    "plain": (dmarc_xml, "text/xml"),
    "gzip-octet-stream": (lambda: gzip.compress(dmarc_xml(), mtime=0), "application/octet-stream"),
}


@pytest.mark.parametrize("form", sorted(_FORMS))
def test_dmarc_report_zipped_or_plain(form: str) -> None:
    make, content_type = _FORMS[form]
    summary = ar.read_report(report_message(make(), content_type, "report"), "dmarc")
    assert isinstance(summary, ar.DMARCSummary) and summary.messages == 15


def test_tls_report() -> None:
    summary = ar.read_report(tlsrpt_message(), "tlsrpt")
    assert isinstance(summary, ar.TLSSummary)
    assert (summary.org, summary.report_id) == ("Reporter Inc.", "t-1")
    assert summary.begin == 1796515200 and summary.end == 1796601599
    (policy,) = summary.policies
    assert (policy.domain, policy.policy_type, policy.successful, policy.failed) == ("example.org", "sts", 40, 2)
    assert policy.failures == {"certificate-expired": 2}


def test_many_records_keep_the_worst_sources_within_bounds() -> None:
    rows = tuple((f"192.0.2.{i}", i, "fail" if i % 2 else "pass", "fail") for i in range(1, 200))
    summary = ar.parse_dmarc(dmarc_xml(rows=rows))
    assert summary.messages == sum(range(1, 200))
    assert len(summary.sources) == ar.MAX_SOURCES
    assert all(s.dkim == "fail" for s in summary.sources) and summary.sources[0].count == 199


def test_bombs_stop_at_the_limit() -> None:
    big = b"<feedback>" + b" " * (ar.MAX_REPORT + 10) + b"</feedback>"
    for attachment, content_type in (
        (gzip.compress(big), "application/gzip"),
        (zipped("r.xml", big), "application/zip"),
    ):
        start = time.process_time()
        with pytest.raises(ar.ReportError, match="inflates to more than"):
            ar.read_report(report_message(attachment, content_type, "bomb"), "dmarc")
        assert time.process_time() - start < 5


def test_refusals() -> None:
    doctype = b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><feedback>&a;</feedback>'
    cases = [
        (report_message(doctype, "text/xml", "x.xml"), "dmarc", "DTD"),
        (report_message(b"<html>no</html>", "text/xml", "x.xml"), "dmarc", "not a DMARC report"),
        (report_message(b"<feedback><unclosed>", "text/xml", "x.xml"), "dmarc", "not XML"),
        (report_message(b"\x1f\x8bnot gzip at all", "application/gzip", "x.gz"), "dmarc", "bad gzip"),
        (report_message(b"PK\x03\x04broken", "application/zip", "x.zip"), "dmarc", "bad zip"),
        (report_message(b"{not json", "application/json", "x.json"), "tlsrpt", "not JSON"),
        (report_message(json.dumps({"a": 1}).encode(), "application/json", "x.json"), "tlsrpt", "no policies"),
        (b"Subject: no attachment\r\n\r\njust text\r\n", "dmarc", "no report attachment"),
    ]
    for message, kind, problem in cases:
        with pytest.raises(ar.ReportError, match=problem):
            ar.read_report(message, kind)
    with pytest.raises(ar.ReportError, match="larger than"):
        ar.read_report(b"x" * (ar.MAX_MESSAGE + 1), "dmarc")
    # Values of the wrong type are read as nothing, not as a crash.
    odd = {"policies": [{"policy": "x", "summary": {"total-failure-session-count": "many"}, "failure-details": 3}]}
    summary = ar.parse_tlsrpt(json.dumps(odd).encode())
    assert summary.policies[0].failed == 0 and summary.begin == 0
