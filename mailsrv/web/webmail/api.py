"""The webmail's JSON API (mailsrv/web/jsonapi.py, sessions.py): one method per user action,
each a thin call of `ops.webmail*` for the session's account. Parameters and results are the
ops layer's msgspec Structs, so the OpenAPI document and the TypeScript types follow from
them. Login is the account login (`sessions.account_login`: ops.login's policy)."""

from __future__ import annotations

from typing import Literal

import msgspec

from mailsrv.ops import mail as mailops
from mailsrv.ops import webmail as wmops
from mailsrv.ops import webmail_compose as wc
from mailsrv.ops import webmail_rules as wr
from mailsrv.ops import webmail_scheduled as wsched
from mailsrv.ops import webmail_settings as ws
from mailsrv.ops.webmail import Webmail
from mailsrv.ops.webmail_view import AddressView, MessageView
from mailsrv.server import Server
from mailsrv.web.jsonapi import Call, api
from mailsrv.web.sessions import SessionAPI, account_login
from mailsrv.web.webmail.stream import EventTokens


class Mailboxes(msgspec.Struct, frozen=True):
    """Every mailbox, and the change-log position they were read at (where the event
    stream starts)."""

    mailboxes: list[wmops.MailboxView]
    seq: int


class MoveResult(msgspec.Struct, frozen=True):
    moved: int
    prompt: wr.RulePrompt | None


class WebmailAPI(SessionAPI):
    """The webmail interface's API (account sessions)."""

    title = "mailsrv webmail API"

    def __init__(self, server: Server, cookie_path: str, tokens: EventTokens) -> None:
        super().__init__(server, "account", cookie_path, account_login)
        self.tokens = tokens

    def wm(self, call: Call) -> Webmail:
        assert call.principal is not None  # authenticated methods only
        return Webmail(self.server, call.principal)

    # --- mailboxes --------------------------------------------------------------------------

    @api
    async def Mailboxes(self, call: Call) -> Mailboxes:
        wm = self.wm(call)
        seq = await wmops.last_change(wm)
        return Mailboxes(await wmops.mailboxes(wm), seq)

    @api
    async def MailboxCreate(self, call: Call, name: str) -> None:
        await mailops.create_mailbox(self.wm(call).mail(), name)

    @api
    async def MailboxRename(self, call: Call, old: str, new: str) -> None:
        await mailops.rename_mailbox(self.wm(call).mail(), old, new)

    @api
    async def MailboxDelete(self, call: Call, name: str) -> None:
        await mailops.delete_mailbox(self.wm(call).mail(), name)

    @api
    async def MailboxEmpty(self, call: Call, mailbox_id: int) -> int:
        return await wmops.empty_mailbox(self.wm(call), mailbox_id)

    # --- lists and search -------------------------------------------------------------------

    @api
    async def MessageList(self, call: Call, request: wmops.ListRequest) -> wmops.MessageList:
        return await wmops.list_messages(self.wm(call), request)

    @api
    async def Thread(self, call: Call, thread_id: int) -> list[wmops.MessageItem]:
        return await wmops.thread_messages(self.wm(call), thread_id)

    @api
    async def Search(self, call: Call, request: wmops.SearchRequest) -> wmops.SearchResult:
        return await wmops.search(self.wm(call), request)

    # --- one message ------------------------------------------------------------------------

    @api
    async def Message(self, call: Call, message_id: int) -> MessageView:
        return await wmops.open_message(self.wm(call), message_id)

    @api
    async def FlagsChange(self, call: Call, ids: list[int], action: Literal["add", "remove"], flags: list[str]) -> int:
        return await wmops.change_flags(self.wm(call), ids, action, flags)

    @api
    async def Move(self, call: Call, ids: list[int], dest: str) -> MoveResult:
        moved, prompt = await wr.move_and_suggest(self.wm(call), ids, dest)
        return MoveResult(moved, prompt)

    @api
    async def Copy(self, call: Call, ids: list[int], dest: str) -> int:
        return await wmops.copy(self.wm(call), ids, dest)

    @api
    async def Delete(self, call: Call, ids: list[int]) -> int:
        return await wmops.delete(self.wm(call), ids)

    @api
    async def Archive(self, call: Call, ids: list[int]) -> int:
        return await wmops.archive(self.wm(call), ids)

    @api
    async def Junk(self, call: Call, ids: list[int], junk: bool) -> int:
        return await wmops.mark_junk(self.wm(call), ids, junk)

    @api
    async def RuleAnswer(self, call: Call, prompt: wr.RulePrompt, answer: wr.Answer) -> None:
        await wr.answer(self.wm(call), wr.RuleAnswer(prompt=prompt, answer=answer))

    @api
    async def RemoteAllow(self, call: Call, address: str, allow: bool) -> None:
        await ws.allow_remote(self.wm(call).store, address, allow)

    # --- settings ---------------------------------------------------------------------------

    @api
    async def Settings(self, call: Call) -> ws.Settings:
        return await ws.get_settings(self.wm(call).store)

    @api
    async def SettingsSave(self, call: Call, settings: ws.Settings) -> ws.Settings:
        return await ws.set_settings(self.wm(call).store, settings)

    # --- writing ----------------------------------------------------------------------------

    @api
    async def FromChoices(self, call: Call) -> list[AddressView]:
        return wc.from_choices(self.server, self.wm(call).account)

    @api
    async def ComposeTemplate(self, call: Call, message_id: int, mode: wc.ReplyMode) -> wc.ComposeForm:
        return await wc.template(self.wm(call), message_id, mode)

    @api
    async def DraftSave(self, call: Call, form: wc.ComposeForm) -> int:
        return await wc.save_draft(self.wm(call), form)

    @api
    async def DraftOpen(self, call: Call, message_id: int) -> wc.ComposeForm:
        return await wc.open_draft(self.wm(call), message_id)

    @api
    async def Send(self, call: Call, form: wc.ComposeForm) -> wc.Sent:
        via = "HTTPS" if call.secure else "HTTP"
        return await wc.send_message(self.wm(call), form, call.peer, via)

    # --- send later -------------------------------------------------------------------------

    @api
    async def Scheduled(self, call: Call) -> list[wsched.ScheduledItem]:
        """The account's messages waiting for their send-later time, soonest first."""
        return await wsched.scheduled_messages(self.wm(call))

    @api
    async def ScheduledReschedule(self, call: Call, id: int, send_at: int) -> None:
        """Moves a scheduled message's send time (Unix seconds; 0: now)."""
        await wsched.reschedule(self.wm(call), id, send_at)

    @api
    async def ScheduledCancel(self, call: Call, id: int) -> int:
        """Stops a scheduled message and puts it back into Drafts; the draft's message id."""
        return await wsched.cancel(self.wm(call), id)

    @api
    async def Complete(self, call: Call, prefix: str) -> list[ws.Correspondent]:
        return await ws.complete_address(self.wm(call).store, prefix)

    # --- live updates -----------------------------------------------------------------------

    @api
    async def EventToken(self, call: Call) -> str:
        """A token for one `events` connection, valid for a minute."""
        return self.tokens.issue(self.wm(call).account)
