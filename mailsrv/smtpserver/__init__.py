"""SMTP (port 25, inbound delivery) and message submission (587 STARTTLS, 465 implicit TLS).

Decision: our own protocol on Twisted's `Protocol` + `TimeoutMixin`, nothing of
`twisted.mail.smtp`. Twisted's ESMTP advertises only AUTH and STARTTLS (no SIZE, 8BITMIME,
PIPELINING, SMTPUTF8, CHUNKING, ENHANCEDSTATUSCODES), rejects non-ASCII addresses, lets
replies to pipelined commands overtake each other when a handler is asynchronous, and
executes plaintext pipelined after STARTTLS inside the TLS session (CVE-2011-0411 class).
We reuse Twisted's transports, `startTLS` and the TLS contexts of `mailsrv.tlsutil`.

Modules:
  session.py   the per-connection state machine: commands, DATA/BDAT, STARTTLS, AUTH
  dotdata.py   DATA content in bulk: end line (CRLF.CRLF only), dot-unstuffing, bare LF/CR detection
  replies.py   SMTPReply and the mapping of ops' typed errors to reply codes
  factory.py   listener factory: per-IP connection limits

What happens to a message is not decided here: recipient resolution, quota, the decision
point, delivery, queueing and DSNs are mailsrv/ops/delivery.py, mail authentication
mailsrv/ops/mailauth.py, the From:/sender checks, Message-ID/Date and DKIM signing of
submitted mail mailsrv/ops/submission.py and mailsrv/ops/dkim.py. This package never imports
the queue or the SMTP client.

Invariants:
- One command at a time: while a command waits (directory lookup, SASL hashing, delivery
  fsync) input stays buffered, and beyond 256 KB the transport stops reading until the
  command is answered; replies go out in command order (RFC 2920 §3).
- 250 after DATA/BDAT LAST only once every local copy is fsynced and indexed and remote
  recipients are in the durable queue; any storage failure answers 451 4.3.0, never 250.
- Port 25 accepts only local recipients (550 5.1.1 unknown, 554 5.7.1 relay denied);
  submission requires AUTH (530 5.7.0), after TLS unless in localserve mode (RFC 4954 §4).
- Port 25 mail is authenticated after DATA/BDAT, before delivery: `Authentication-Results:`
  is prepended to every stored copy, DMARC reject answers 550 5.7.1 (nothing stored),
  quarantine files in Junk (unless a ruleset says accept_regardless); a DNS failure is a
  recorded temperror, never a lost or refused message. Submitted mail is DKIM-signed with
  every selector of its From: domain (`dkim_selectors`), before local delivery and queueing.
- Submission: MAIL FROM must be the null path or an address the account may send as (553
  5.7.1), and the message exactly one From: field (a `From :` counts) with such an address
  (550 5.7.1).
- postmaster@ and abuse@ of every local domain and of the host name, and the bare
  `<postmaster>`, are always accepted (RFC 5321 §4.5.1).
- An account reached twice in one transaction (alias and directly) gets one copy; a list
  member sending to the list gets none.
- DSN (RFC 3461): RET/ENVID and NOTIFY/ORCPT are validated when given (501 5.5.4) and kept
  on the envelope and its recipients; the queue stores them for remote recipients. A local
  recipient with NOTIFY=SUCCESS gets a "delivered" DSN sent to the sender only after every
  copy is stored, and a DSN that cannot be handed over never un-accepts the message.
- Quota (RFC 9208 covers only the IMAP side; RFC 3463 has both 4.2.2 and 5.2.2): we
  answer 452 4.2.2, temporary, at RCPT for a full mailbox and after DATA when the message
  does not fit, checked for every copy before any is stored. A mailbox over quota is usually
  a passing state (the user deletes mail), and a permanent 552 would bounce mail the user
  wants; the sender's queue gives the user days to make room. List members without room
  are skipped; the list accepts if one member does.
- EXPN reveals an alias's members only to an authenticated member when ListMembers is set;
  VRFY never reveals anything (252).
- A TLS client certificate registered for an account authenticates a submission session
  (the seam: `SMTPSession.handshakeCompleted` / `external_identity`) once the account
  provider confirms the account may still log in; commands wait in the buffer meanwhile.
- Every reply carries an enhanced status code (RFC 2034/3463) except the greeting, EHLO
  and 334 continuation lines, where RFC 2034 §3 does not apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from twisted.internet.interfaces import IProtocolFactory

    from mailsrv.config.types import ListenerConfig
    from mailsrv.server import Server


def make_factory(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    from mailsrv.smtpserver.factory import SMTPFactory

    return cast("IProtocolFactory", SMTPFactory(server, listener))
