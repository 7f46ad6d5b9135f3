"""The SMTP session over StringTransport (tests/smtpserver/harness.py), no daemon: pipelined
replies in command order, recipient and size limits, line length and bad-command counting,
MAIL/RCPT parameters (SIZE, DSN), the per-IP connection limit and the command timeout on a
fake clock."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.config.types import LimitsConfig, SMTPConfig
from tests.smtpserver.harness import Client, Harness, final_lines

LIMITS = LimitsConfig(smtp_max_recipients=3, smtp_max_line_length=600, max_connections_per_ip=4, max_message_size=4096)


class SessionTests(TestCase):
    def setUp(self) -> None:
        self.harness = Harness(Path(self.mktemp()), limits=LIMITS, smtp=SMTPConfig(command_timeout=30))
        self.addCleanup(self.harness.close)

    def client(self) -> Client:
        c = self.harness.client()
        self.assertTrue(c.greeting.startswith(b"220 mail.example.org ESMTP"))
        return c

    def replies(self, data: bytes) -> list[str]:
        """Final reply lines for `data` when no command waits on a thread."""
        return final_lines(self.client().send(data))

    async def test_pipelined_replies_come_in_command_order(self) -> None:
        c = self.client()
        c.session.dataReceived(
            b"EHLO p.example\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<nobody@example.org>\r\n"
            b"RCPT TO:<alice@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nRCPT TO:<bob@example.org>\r\n"
            b"DATA\r\nSubject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n"
        )
        replies = await c.wait_for(9)
        codes = [r[:9] for r in replies]
        # The EHLO reply's last line: DSN (no STARTTLS without a key pair).
        expected = ["250 DSN", "250 2.1.0", "550 5.1.1", "250 2.1.5", "554 5.7.1", "250 2.1.5", "354 end d"]
        self.assertEqual(codes, [*expected, "250 2.0.0", "221 2.0.0"], replies)
        self.assertTrue(c.closed)
        self.assertEqual(self.harness.server.stores.open("bob").mailbox("INBOX").messages, 1)

    def test_replies_to_one_read_of_pipelined_commands_go_out_in_one_write(self) -> None:
        """RFC 2920: a client that pipelines gets its replies together, not one segment per command."""
        c = self.client()
        writes: list[bytes] = []
        write = c.transport.write
        c.transport.write = lambda data: (writes.append(data), write(data))[1]  # type: ignore[method-assign,func-returns-value]
        replies = final_lines(c.send(b"EHLO p.example\r\nNOOP\r\nMAIL FROM:<x@example.net>\r\nRSET\r\nNOOP\r\n"))
        self.assertEqual([r[:3] for r in replies], ["250"] * 5)
        self.assertEqual(len(writes), 1, writes)
        # A command after STARTTLS-less input and a closing one still reply at once.
        self.assertEqual(final_lines(c.cmd("QUIT")), ["221 2.0.0 bye"])
        self.assertTrue(c.closed)

    def test_recipient_limit(self) -> None:
        rcpts = b"".join(b"RCPT TO:<alice+%d@example.org>\r\n" % i for i in range(4))
        replies = self.replies(b"EHLO x\r\nMAIL FROM:<x@example.net>\r\n" + rcpts + b"RSET\r\nQUIT\r\n")
        self.assertEqual([r[:9] for r in replies[2:6]], ["250 2.1.5"] * 3 + ["452 4.5.3"])

    def test_size_limit_declared_and_actual(self) -> None:
        replies = self.replies(b"EHLO x\r\nMAIL FROM:<x@example.net> SIZE=5000\r\nQUIT\r\n")
        self.assertTrue(replies[1].startswith("552 5.3.4"), replies)
        self.assertIn("SIZE 4096", self.client().cmd("EHLO x").decode())
        body = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n.\r\nQUIT\r\n"
        replies = self.replies(b"EHLO x\r\nMAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + body)
        self.assertTrue(replies[-2].startswith("552 5.3.4"), replies)

    def test_long_lines_and_bad_commands_close_the_session(self) -> None:
        replies = self.replies(b"EHLO " + b"x" * 700 + b"\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual(replies, ["500 5.5.2 line too long", "250 2.0.0 OK", "221 2.0.0 bye"])
        c = self.client()
        replies = final_lines(c.send(b"BOGUS\r\n" * 12))
        self.assertTrue(replies[-1].startswith("421 4.7.0"))
        self.assertEqual(len(replies), 11)
        self.assertTrue(c.closed)

    def test_invalid_dsn_and_mail_parameters_are_refused(self) -> None:
        c = self.client()
        c.cmd("EHLO x")
        for params in ("RET=BODY", "RET", "RET=FULL RET=HDRS", "ENVID=" + "x" * 101, "ENVID=a+2b", "ENVID=a=b"):
            self.assertTrue(c.cmd(f"MAIL FROM:<x@example.net> {params}").startswith(b"501 5.5.4"), params)
        c = self.client()  # ten refused commands end a session (MAX_BAD_COMMANDS)
        c.cmd("EHLO x")
        self.assertTrue(c.cmd("MAIL FROM:<x@example.net> RET=full ENVID=QQ+2B1").startswith(b"250"))
        for params in (
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SOMETIMES",
            "NOTIFY=",
            "NOTIFY=SUCCESS NOTIFY=FAILURE",
            "ORCPT=alice@example.org",
            "ORCPT=rfc822;a+0Db@example.org",
        ):
            self.assertTrue(c.cmd(f"RCPT TO:<alice@example.org> {params}").startswith(b"501 5.5.4"), params)
        self.assertTrue(c.cmd("RCPT TO:<alice@example.org> FOO=BAR").startswith(b"555"))
        self.assertTrue(
            c.cmd("RCPT TO:<alice@example.org> NOTIFY=never ORCPT=rfc822;alice@example.org").startswith(b"250")
        )
        self.assertTrue(c.cmd("RSET").startswith(b"250"))
        self.assertTrue(c.cmd("NOOP").startswith(b"250"))  # the session survived all of it
        self.assertTrue(c.cmd("MAIL FROM:<a@b.example> SIZE=999999999999").startswith(b"552 5.3.4"))

    def test_per_ip_connection_limit(self) -> None:
        sessions = [self.client() for _ in range(4)]
        extra = self.harness.client()
        self.assertTrue(extra.greeting.startswith(b"421 4.7.0"))
        self.assertTrue(extra.closed)
        other_ip = self.harness.client(ip="192.0.2.8")
        self.assertTrue(other_ip.greeting.startswith(b"220"))
        sessions[0].session.connectionLost()
        extra.session.connectionLost()
        self.assertTrue(self.harness.client().greeting.startswith(b"220"))

    def test_command_timeout_on_the_clock(self) -> None:
        c = self.client()
        self.harness.clock.advance(29)
        c.cmd("NOOP")  # activity restarts the timer
        self.harness.clock.advance(29)
        self.assertFalse(c.closed)
        self.assertEqual(c.take(), b"")
        self.harness.clock.advance(1.5)
        self.assertTrue(c.take().startswith(b"421 4.4.2"))
        self.assertTrue(c.closed)
