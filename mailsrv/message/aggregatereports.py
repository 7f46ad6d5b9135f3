"""DMARC aggregate reports (RFC 7489 §7.2, Appendix C: XML, usually gzip or zip) and SMTP TLS
reports (RFC 8460 §4: JSON, usually gzip) taken from a received message and summarised.

The reporting addresses are published in DNS, so anyone may send anything to them: every step
is bounded. The message is at most MAX_MESSAGE octets, at most MAX_PARTS MIME parts are looked
at, a decompressed report is at most MAX_REPORT octets (gzip and zip are inflated
incrementally and stopped there: a zip bomb costs MAX_REPORT, not its expansion), an XML
report with a DTD is refused (no entity expansion, no external entities; expat's own
amplification limits stay on), and a summary keeps at most MAX_SOURCES source rows and
MAX_FAILURE_KINDS failure kinds. A report that does not parse is ReportError, never an
exception of another kind.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import io
import json
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, cast

import msgspec

MAX_MESSAGE = 16 * 1024 * 1024
MAX_REPORT = 32 * 1024 * 1024
MAX_PARTS = 50
MAX_SOURCES = 20
MAX_FAILURE_KINDS = 20
MAX_TEXT = 256  # characters kept of an organisation name, a report id, a domain


class ReportError(Exception):
    """The message holds no report that can be read; the text says why."""


class SourceRow(msgspec.Struct, kw_only=True):
    """Messages from one source IP with one outcome (a DMARC report's <record>)."""

    ip: str
    count: int
    disposition: str  # none, quarantine, reject: what the receiver did
    dkim: str  # pass/fail: the DKIM result aligned with the From: domain, as evaluated
    spf: str


class DMARCSummary(msgspec.Struct, kw_only=True):
    org: str
    report_id: str
    domain: str  # the policy domain reported about
    begin: int  # Unix seconds
    end: int
    messages: int  # in all records
    passed: int  # messages whose DKIM or SPF evaluation passed (DMARC pass)
    failed: int
    # The sources with the most failing messages first, then the others; at most MAX_SOURCES.
    sources: list[SourceRow] = []


class TLSPolicySummary(msgspec.Struct, kw_only=True):
    domain: str  # the policy domain
    policy_type: str  # sts, tlsa, no-policy-found
    successful: int
    failed: int
    failures: dict[str, int] = {}  # result-type -> sessions


class TLSSummary(msgspec.Struct, kw_only=True):
    org: str
    report_id: str
    begin: int
    end: int
    policies: list[TLSPolicySummary]


def _text(value: object) -> str:
    return str(value or "").strip()[:MAX_TEXT]


def _int(value: object) -> int:
    try:
        return max(0, int(str(value).strip()))
    except (TypeError, ValueError):
        return 0


def _inflate_gzip(data: bytes) -> bytes:
    # wbits 16+15: a gzip member; max_length stops inflation at the limit.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_REPORT + 1)
    except zlib.error as e:
        raise ReportError(f"bad gzip data: {e}") from None
    if len(out) > MAX_REPORT:
        raise ReportError(f"the report inflates to more than {MAX_REPORT} octets")
    return out


def _inflate_zip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members:
                raise ReportError("an empty zip archive")
            with archive.open(members[0]) as member:
                out = member.read(MAX_REPORT + 1)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error) as e:
        raise ReportError(f"bad zip archive: {e}") from None
    if len(out) > MAX_REPORT:
        raise ReportError(f"the report inflates to more than {MAX_REPORT} octets")
    return out


def unpack(data: bytes) -> bytes:
    """The report document in an attachment's bytes: gzip and zip by their magic numbers."""
    if data[:2] == b"\x1f\x8b":
        return _inflate_gzip(data)
    if data[:4] == b"PK\x03\x04":
        return _inflate_zip(data)
    if len(data) > MAX_REPORT:
        raise ReportError(f"the report is larger than {MAX_REPORT} octets")
    return data


_REPORT_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip-compressed",
    "application/x-zip",
    "application/xml",
    "text/xml",
    "application/json",
    "application/tlsrpt+json",
    "application/tlsrpt+gzip",
    "application/octet-stream",
)


def attachments(message: bytes) -> Iterator[bytes]:
    """The decoded bodies of the parts that may hold a report, in order (at most MAX_PARTS parts looked at)."""
    if len(message) > MAX_MESSAGE:
        raise ReportError(f"the message is larger than {MAX_MESSAGE} octets")
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for i, part in enumerate(parsed.walk()):
        if i >= MAX_PARTS:
            break
        if part.is_multipart() or part.get_content_type() not in _REPORT_TYPES:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            yield payload


def _child_text(element: ET.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return _text(found.text if found is not None else "")


def parse_dmarc(document: bytes) -> DMARCSummary:
    """A DMARC aggregate report (RFC 7489 Appendix C) summarised. Parsed as a stream: each
    <record> is counted and dropped, so memory stays small whatever the report's size."""
    if b"<!DOCTYPE" in document[:4096].upper() or b"<!ENTITY" in document.upper():
        raise ReportError("an XML report with a DTD is refused")
    parser: Any = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    sources: list[SourceRow] = []
    passed = failed = 0
    try:
        for offset in range(0, len(document), 65536):
            parser.feed(document[offset : offset + 65536])
            for event, item in parser.read_events():
                element = cast(ET.Element, item)
                if root is None:
                    root = element
                    if root.tag != "feedback":
                        raise ReportError(f"not a DMARC report (root element {root.tag[:40]!r})")
                if event != "end" or element.tag != "record":
                    continue
                row = element.find("row")
                count = _int(_child_text(row, "count"))
                evaluated = row.find("policy_evaluated") if row is not None else None
                dkim, spf = _child_text(evaluated, "dkim") or "?", _child_text(evaluated, "spf") or "?"
                if "pass" in (dkim, spf):
                    passed += count
                else:
                    failed += count
                source = SourceRow(
                    ip=_child_text(row, "source_ip"),
                    count=count,
                    disposition=_child_text(evaluated, "disposition") or "?",
                    dkim=dkim,
                    spf=spf,
                )
                sources.append(source)
                try:
                    root.remove(element)
                except ValueError:  # a record nested deeper than the schema says: only emptied
                    element.clear()
                if len(sources) > 4 * MAX_SOURCES:
                    sources.sort(key=_source_order)
                    del sources[MAX_SOURCES:]
        parser.close()
    except ET.ParseError as e:
        raise ReportError(f"not XML: {e}") from None
    if root is None:
        raise ReportError("an empty document")
    sources.sort(key=_source_order)
    meta = root.find("report_metadata")
    return DMARCSummary(
        org=_child_text(meta, "org_name"),
        report_id=_child_text(meta, "report_id"),
        domain=_child_text(root.find("policy_published"), "domain").lower().rstrip("."),
        begin=_int(_child_text(meta, "date_range/begin")),
        end=_int(_child_text(meta, "date_range/end")),
        messages=passed + failed,
        passed=passed,
        failed=failed,
        sources=sources[:MAX_SOURCES],
    )


def _source_order(s: SourceRow) -> tuple[bool, int]:
    # Failing sources first (what the domain's owner must look at), the largest first.
    return ("pass" in (s.dkim, s.spf), -s.count)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _timestamp(text: object) -> int:
    """RFC 3339 date-time (RFC 8460 §4.4 date-range) as Unix seconds; 0 when unreadable."""
    try:
        return int(datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())
    except (TypeError, ValueError):
        return 0


def parse_tlsrpt(document: bytes) -> TLSSummary:
    """An SMTP TLS report (RFC 8460 §4) summarised."""
    try:
        report = json.loads(document)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ReportError(f"not JSON: {str(e)[:100]}") from None
    if not isinstance(report, dict) or not isinstance(report.get("policies"), list):
        raise ReportError("not a TLS report (no policies)")
    dates = _get(report, "date-range")
    policies = []
    for entry in report["policies"][:100]:
        policy, summary = _get(entry, "policy"), _get(entry, "summary")
        failures: dict[str, int] = {}
        details = _get(entry, "failure-details")
        for detail in details if isinstance(details, list) else []:
            kind = _text(_get(detail, "result-type")) or "unknown"
            if kind in failures or len(failures) < MAX_FAILURE_KINDS:
                failures[kind] = failures.get(kind, 0) + _int(_get(detail, "failed-session-count"))
        policies.append(
            TLSPolicySummary(
                domain=_text(_get(policy, "policy-domain")).lower().rstrip("."),
                policy_type=_text(_get(policy, "policy-type")),
                successful=_int(_get(summary, "total-successful-session-count")),
                failed=_int(_get(summary, "total-failure-session-count")),
                failures=failures,
            )
        )
    return TLSSummary(
        org=_text(report.get("organization-name")),
        report_id=_text(report.get("report-id")),
        begin=_timestamp(_get(dates, "start-datetime")),
        end=_timestamp(_get(dates, "end-datetime")),
        policies=policies,
    )


def read_report(message: bytes, kind: str) -> DMARCSummary | TLSSummary:
    """The first report of `kind` ("dmarc" or "tlsrpt") in the message; ReportError when none reads."""
    problems: list[str] = []
    for body in attachments(message):
        try:
            document = unpack(body)
            return parse_dmarc(document) if kind == "dmarc" else parse_tlsrpt(document)
        except ReportError as e:
            problems.append(str(e))
    raise ReportError("; ".join(problems[:3]) or "no report attachment")
