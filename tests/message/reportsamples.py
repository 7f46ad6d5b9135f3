"""DMARC aggregate and SMTP TLS reports as reporters send them, for tests: the documents
(RFC 7489 Appendix C, RFC 8460 §4.4) and messages carrying them gzipped or zipped."""

from __future__ import annotations

import email.policy
import gzip
import io
import json
import zipfile
from email.message import EmailMessage


def dmarc_xml(
    domain: str = "example.org", report_id: str = "r-1", rows: tuple[tuple[str, int, str, str], ...] = ()
) -> bytes:
    rows = rows or (("192.0.2.10", 12, "pass", "pass"), ("198.51.100.7", 3, "fail", "fail"))
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>{'none' if 'pass' in (dkim, spf) else 'reject'}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>"
        f"</policy_evaluated></row><identifiers><header_from>{domain}</header_from></identifiers></record>"
        for ip, count, dkim, spf in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata><org_name>reporter.example</org_name>'
        f"<email>noreply-dmarc@reporter.example</email><report_id>{report_id}</report_id>"
        "<date_range><begin>1796515200</begin><end>1796601599</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><p>reject</p><pct>100</pct></policy_published>"
        f"{records}</feedback>"
    ).encode()


def tlsrpt_json(domain: str = "example.org", report_id: str = "t-1", failed: int = 2) -> bytes:
    report = {
        "organization-name": "Reporter Inc.",
        "date-range": {"start-datetime": "2026-12-06T00:00:00Z", "end-datetime": "2026-12-06T23:59:59Z"},
        "contact-info": "tls-reports@reporter.example",
        "report-id": report_id,
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-string": ["version: STSv1"], "policy-domain": domain},
                "summary": {"total-successful-session-count": 40, "total-failure-session-count": failed},
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "203.0.113.5",
                        "failed-session-count": failed,
                    }
                ],
            }
        ],
    }
    return json.dumps(report).encode()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def report_message(attachment: bytes, content_type: str, filename: str, to: str = "alice+dmarc@example.org") -> bytes:
    """A report message as reporters send it: a short text part and the report attached."""
    message = EmailMessage()
    message["From"] = "noreply-dmarc@reporter.example"
    message["To"] = to
    message["Subject"] = "Report Domain: example.org Submitter: reporter.example Report-ID: r-1"
    message["Message-ID"] = f"<{filename}@reporter.example>"
    message.set_content("This is an aggregate report.")
    maintype, subtype = content_type.split("/")
    message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=email.policy.SMTP)  # CRLF, as on the wire


def dmarc_message(domain: str = "example.org", report_id: str = "r-1", to: str = "alice+dmarc@example.org") -> bytes:
    return report_message(gzip.compress(dmarc_xml(domain, report_id)), "application/gzip", f"{report_id}.xml.gz", to)


def tlsrpt_message(domain: str = "example.org", report_id: str = "t-1", to: str = "alice+tls@example.org") -> bytes:
    data = gzip.compress(tlsrpt_json(domain, report_id))
    return report_message(data, "application/tlsrpt+gzip", f"{report_id}.json.gz", to)
