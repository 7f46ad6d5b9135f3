"""Webhook settings of an account and administration of the webhook queue (docs/webhooks.md).

The account sets its own webhooks with mox's account API names (the account page and the CLI
call these):

    await outgoing_webhook_save(server, OutgoingWebhookSave(account="mjl", url="https://...",
                                authorization="Basic ...", events=["delivered", "failed"]))
    await incoming_webhook_save(server, IncomingWebhookSave(account="mjl", url="https://..."))
    (await webhook_secret_rotate(server, WebhookAccount(account="mjl"))).secret   # shown once

An empty URL disables a webhook; empty events means every event. The signing secret
(Standard Webhooks, `whsec_...`) is returned only by the rotation; until the first rotation
webhooks go out unsigned. The admin lists (paged), retries and drops queued webhooks, and
reads the retired list.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from mailsrv.config.load import parse_duration
from mailsrv.ops.configerrors import refusals_as_invalid_input
from mailsrv.ops.errors import InvalidInput, NotFound, TemporaryFailure
from mailsrv.ops.operation import Operation
from mailsrv.webhooks.payload import OUTGOING_EVENTS
from mailsrv.webhooks.store import MAX_PAGE, HookPage, Settings, WebhookStore
from mailsrv.webhooks.targets import check_url

if TYPE_CHECKING:
    from mailsrv.server import Server

__all__ = [
    "OUTGOING_EVENTS",
    "HookPage",
    "IncomingWebhookSave",
    "OutgoingWebhookSave",
    "Secret",
    "Settings",
    "WebhookAccount",
    "incoming_webhook_save",
    "outgoing_webhook_save",
    "webhook_secret_rotate",
    "webhook_settings",
]

MAX_AUTHORIZATION = 1000


class OutgoingWebhookSave(msgspec.Struct, kw_only=True):
    account: str
    url: str = ""  # "": no outgoing webhook
    authorization: str = ""  # the Authorization header value, e.g. "Basic ..."; "": none
    events: list[str] = []  # empty: every event


class IncomingWebhookSave(msgspec.Struct, kw_only=True):
    account: str
    url: str = ""
    authorization: str = ""


class WebhookAccount(msgspec.Struct, kw_only=True):
    account: str


class Secret(msgspec.Struct, kw_only=True):
    secret: str  # whsec_ + base64: verify webhook-signature with it (shown only now)


class ListHooks(msgspec.Struct, kw_only=True):
    account: str | None = None
    after: int = 0  # the previous page's `next`
    limit: int = 100


class HookSelection(msgspec.Struct, kw_only=True):
    account: str | None = None
    ids: list[int] = []
    all: bool = False  # needed when neither account nor ids is given


class Count(msgspec.Struct, kw_only=True):
    count: int


class Keep(msgspec.Struct, kw_only=True):
    account: str
    keep: str | None = None  # a duration ("7d", "12h", "0"); None: only show it


class FromIDAddresses(msgspec.Struct, kw_only=True):
    account: str
    addresses: list[str] | None = None  # None: only show them


class FromIDSettings(msgspec.Struct, kw_only=True):
    account: str
    addresses: list[str]
    retired_keep: int  # the queue's keep period: DSNs are matched only to messages still kept


def _store(server: Server) -> WebhookStore:
    if server.webhooks is None:
        raise TemporaryFailure("webhooks are not available")
    return server.webhooks


def _check_account(server: Server, account: str) -> None:
    if server.dynamic.account_by_name(account) is None and server.config.ldap is None:
        raise NotFound(f"no such account: {account}")


def _url(url: str) -> str:
    if not url:
        return ""
    try:
        return check_url(url.strip())
    except ValueError as e:
        raise InvalidInput(f"url: {e}", field="url") from None


def _authorization(value: str) -> str:
    if len(value) > MAX_AUTHORIZATION or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(
            f"authorization: one line of printable characters, at most {MAX_AUTHORIZATION}", field="authorization"
        )
    return value


async def outgoing_webhook_save(server: Server, req: OutgoingWebhookSave) -> Settings:
    _check_account(server, req.account)
    unknown = [e for e in req.events if e not in OUTGOING_EVENTS]
    if unknown:
        known = ", ".join(OUTGOING_EVENTS)
        raise InvalidInput(f"events: unknown {', '.join(unknown)} (known: {known})", field="events")
    store = _store(server)
    events = list(dict.fromkeys(req.events))
    await store.save_outgoing(req.account, _url(req.url), _authorization(req.authorization), events)
    return store.settings(req.account)


async def incoming_webhook_save(server: Server, req: IncomingWebhookSave) -> Settings:
    _check_account(server, req.account)
    store = _store(server)
    await store.save_incoming(req.account, _url(req.url), _authorization(req.authorization))
    return store.settings(req.account)


async def webhook_secret_rotate(server: Server, req: WebhookAccount) -> Secret:
    """A new signing secret replaces the old one at once (webhooks still queued are signed
    with the new one when sent)."""
    _check_account(server, req.account)
    return Secret(secret=await _store(server).rotate_secret(req.account))


def webhook_settings(server: Server, req: WebhookAccount) -> Settings:
    _check_account(server, req.account)
    return _store(server).settings(req.account)


def _page(server: Server, req: ListHooks, retired: bool) -> HookPage:
    if not 1 <= req.limit <= MAX_PAGE:
        raise InvalidInput(f"limit: 1 to {MAX_PAGE}", field="limit")
    return _store(server).page(retired, req.account or None, req.after, req.limit)


def list_queue(server: Server, req: ListHooks) -> HookPage:
    """Webhooks still to call, oldest first, one page."""
    return _page(server, req, retired=False)


def list_retired(server: Server, req: ListHooks) -> HookPage:
    """Finished webhooks (delivered, failed, dropped, superseded, disabled), newest first."""
    return _page(server, req, retired=True)


def _selection(req: HookSelection) -> tuple[str | None, list[int]]:
    if not req.account and not req.ids and not req.all:
        raise InvalidInput("give an account, webhook ids, or all")
    return req.account or None, list(req.ids)


async def retry(server: Server, req: HookSelection) -> Count:
    """Makes matching queued webhooks due now."""
    account, ids = _selection(req)
    return Count(count=await _store(server).retry(account, ids, time.time()))


async def drop(server: Server, req: HookSelection) -> Count:
    """Retires matching queued webhooks without calling them again."""
    account, ids = _selection(req)
    return Count(count=await _store(server).drop(account, ids, time.time()))


async def keep(server: Server, req: Keep) -> Settings:
    """Shows or sets how long the account's finished webhooks stay in the retired list."""
    _check_account(server, req.account)
    store = _store(server)
    if req.keep is not None:
        seconds = parse_duration(req.keep)
        if seconds is None:
            raise InvalidInput(f'keep must be a duration such as "7d" or "12h", or 0; got {req.keep!r}', field="keep")
        await store.set_retired_keep(req.account, seconds)
    return store.settings(req.account)


def fromid(server: Server, req: FromIDAddresses) -> FromIDSettings:
    """Shows or sets the account's fromid login addresses (in a thread: the dynamic config is
    rewritten)."""
    account = server.dynamic.account_by_name(req.account)
    if account is None:
        raise NotFound(f"no such account: {req.account}")
    if req.addresses is not None:
        with refusals_as_invalid_input():
            account = server.dynamic.set_account_fromid_addresses(req.account, req.addresses)
    return FromIDSettings(
        account=account.name,
        addresses=[a.display() for a in account.fromid_login_addresses],
        retired_keep=account.retired_keep,
    )


OPERATIONS = (
    Operation("webhooks.outgoing", outgoing_webhook_save, OutgoingWebhookSave, summary="set an outgoing webhook"),
    Operation("webhooks.incoming", incoming_webhook_save, IncomingWebhookSave, summary="set an incoming webhook"),
    Operation("webhooks.rotate", webhook_secret_rotate, WebhookAccount, summary="new webhook signing secret"),
    Operation("webhooks.settings", webhook_settings, WebhookAccount, summary="an account's webhook settings"),
    Operation("webhooks.list", list_queue, ListHooks, summary="queued webhooks, one page"),
    Operation("webhooks.retired", list_retired, ListHooks, summary="retired webhooks, one page"),
    Operation("webhooks.retry", retry, HookSelection, summary="call queued webhooks now"),
    Operation("webhooks.drop", drop, HookSelection, summary="stop calling queued webhooks"),
    Operation("webhooks.keep", keep, Keep, summary="show or set how long finished webhooks stay listed"),
    Operation("webhooks.fromid", fromid, FromIDAddresses, in_thread=True, summary="fromid login addresses"),
)
