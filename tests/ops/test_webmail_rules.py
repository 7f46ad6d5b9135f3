"""mailsrv/ops/webmail_rules.py, issue 15 item 7: a move out of the Inbox offers a rule (list
rule with the shortest verified domain that is a suffix of the List-Id, else msgfrom), "yes"
makes the next delivery land there, stored "no" answers (sender, list, mailbox) silence it,
special-use mailboxes and existing rules never prompt, moving back offers removal."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.ops import rules as rulesops
from mailsrv.ops import webmail as wmops
from mailsrv.ops import webmail_rules as wr
from mailsrv.ops.errors import InvalidInput
from tests.ops.webmailworld import deliver_to, webmail, webmail_server
from tests.storeguard import guard_test

DAY = datetime.date(2026, 12, 7)


def note(sender: str = "carol@elsewhere.example", list_id: str = "", subject: str = "hi") -> bytes:
    extra = f"List-Id: Dev talk <{list_id}>\r\n" if list_id else ""
    return f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n{extra}\r\nbody\r\n".encode()


class MakeRuleTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-wmr-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.server = webmail_server(self.dir)
        guard_test(self)  # no synchronous store read on this path (tests/storeguard.py)
        self.addCleanup(self.server.close)
        self.wm = webmail(self.server)
        self.done = self.wm.store.create_mailbox("Done")

    async def newest(self, mailbox: str = "INBOX") -> int:
        box = self.wm.store.mailbox(mailbox)
        page = await wmops.list_messages(self.wm, wmops.ListRequest(mailbox_id=box.id, count=1))
        return page.messages[0].id

    async def moved(self, message_id: int, dest: str) -> wr.RulePrompt | None:
        found = await self.wm.store.find_message(message_id)
        assert found is not None
        source = self.wm.store.mailbox_by_id(found.mailbox_id)
        await wmops.move(self.wm, [message_id], dest)
        return await wr.suggest(self.wm, message_id, source, self.wm.store.mailbox(dest), DAY)

    def rules(self) -> list[rulesops.RulesetSpec]:
        return rulesops.list_rules(self.server, rulesops.AccountRules(account="alice"))

    async def test_msgfrom_rule_yes_then_next_delivery_lands_there(self) -> None:
        await self.done
        await deliver_to(self.server, note())
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        self.assertEqual((prompt.kind, prompt.mailbox, prompt.list_id), ("create", "Done", ""))
        self.assertEqual(prompt.ruleset.msg_from, r"^carol@elsewhere\.example$")
        self.assertEqual(prompt.ruleset.comment, "created by webmail on 2026-12-07")
        await wr.answer(self.wm, wr.RuleAnswer(prompt=prompt, answer="yes"))
        await wr.answer(self.wm, wr.RuleAnswer(prompt=prompt, answer="yes"))  # twice: one rule
        self.assertEqual(len(self.rules()), 1)
        result = await deliver_to(self.server, note(subject="second"))
        self.assertEqual(result.mailboxes, {"alice": "Done"})
        # The rule exists now: moving such a message out of the Inbox asks nothing.
        await wmops.move(self.wm, [await self.newest("Done")], "INBOX")
        self.assertIsNone(await self.moved(await self.newest(), "Done"))
        # Moving back into the Inbox offers to remove it; yes removes it.
        back = await self.moved(await self.newest("Done"), "INBOX")
        assert back is not None
        self.assertEqual((back.kind, back.mailbox), ("remove", "Done"))
        await wr.answer(self.wm, wr.RuleAnswer(prompt=back, answer="yes"))
        self.assertEqual(self.rules(), [])

    async def test_list_rule_with_shortest_verified_suffix_domain(self) -> None:
        await self.done
        verified = ("mx.lists.example.org", "lists.example.org", "example.org", "unrelated.example")
        await deliver_to(self.server, note(list_id="dev.lists.example.org"), verified=verified)
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        self.assertEqual((prompt.list_id, prompt.verified_domain), ("dev.lists.example.org", "example.org"))
        self.assertTrue(prompt.ruleset.is_list)
        await wr.answer(self.wm, wr.RuleAnswer(prompt=prompt, answer="yes"))
        landed = await deliver_to(self.server, note(list_id="dev.lists.example.org"), verified=("example.org",))
        self.assertEqual(landed.mailboxes, {"alice": "Done"})
        # The same List-Id without a verified domain (forged) stays in the Inbox.
        forged = await deliver_to(self.server, note(list_id="dev.lists.example.org"))
        self.assertEqual(forged.mailboxes, {"alice": "INBOX"})

    async def test_list_id_without_verified_suffix_falls_back_to_msgfrom(self) -> None:
        await self.done
        await deliver_to(self.server, note(list_id="dev.lists.example.org"), verified=("other.example",))
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        self.assertEqual((prompt.list_id, prompt.ruleset.is_list), ("", False))
        self.assertTrue(prompt.ruleset.msg_from)

    async def test_special_use_mailboxes_never_prompt(self) -> None:
        await self.done
        for dest in ("Trash", "Archive", "Junk", "Sent", "Drafts"):
            await deliver_to(self.server, note())
            self.assertIsNone(await self.moved(await self.newest(), dest), dest)
        # Nor moving from Done to Archive (the Inbox is not involved).
        await deliver_to(self.server, note())
        await wmops.move(self.wm, [await self.newest()], "Done")
        self.assertIsNone(await self.moved(await self.newest("Done"), "Archive"))
        # Nor from Trash back to the Inbox.
        self.assertIsNone(await self.moved(await self.newest("Trash"), "INBOX"))

    async def test_stored_no_answers(self) -> None:
        await self.done
        await self.wm.store.create_mailbox("Later")
        await deliver_to(self.server, note())
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        await wr.answer(self.wm, wr.RuleAnswer(prompt=prompt, answer="no-sender"))
        await deliver_to(self.server, note())
        self.assertIsNone(await self.moved(await self.newest(), "Later"))  # not for this sender, anywhere
        await deliver_to(self.server, note(sender="dave@elsewhere.example"))
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        await wr.answer(self.wm, wr.RuleAnswer(prompt=prompt, answer="no-mailbox"))
        await deliver_to(self.server, note(sender="erin@elsewhere.example"))
        self.assertIsNone(await self.moved(await self.newest(), "Done"))  # not for this mailbox
        await deliver_to(self.server, note(sender="erin@elsewhere.example"))
        later = await self.moved(await self.newest(), "Later")
        assert later is not None
        await wr.answer(self.wm, wr.RuleAnswer(prompt=later, answer="later"))
        self.assertEqual(self.rules(), [])
        self.assertEqual(await wr.forget_answers(self.wm), 2)
        await deliver_to(self.server, note())
        self.assertIsNotNone(await self.moved(await self.newest(), "Done"))

    async def test_tampered_prompt_is_refused(self) -> None:
        await self.done
        await deliver_to(self.server, note())
        prompt = await self.moved(await self.newest(), "Done")
        assert prompt is not None
        bad = wr.RulePrompt(
            kind="create",
            message_id=1,
            mailbox="Done",
            from_address="x@y",
            ruleset=rulesops.RulesetSpec(mailbox="Other"),
        )
        with self.assertRaises(InvalidInput):
            await wr.answer(self.wm, wr.RuleAnswer(prompt=bad, answer="yes"))
        broken = wr.RulePrompt(
            kind="create",
            message_id=1,
            mailbox="Done",
            from_address="x@y",
            ruleset=rulesops.RulesetSpec(mailbox="Done"),
        )
        with self.assertRaises(InvalidInput):
            await wr.answer(self.wm, wr.RuleAnswer(prompt=broken, answer="yes"))  # no condition
