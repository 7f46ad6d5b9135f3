"""What the webmail remembers per account, in the account's store (`AccountStore.get_data`):
the reader's settings, the senders whose remote resources may load, and the answers to
"make a rule?" (`ops.webmail_rules`). Everything here is small, per account, and reached
through the store interface, so a PostgreSQL store keeps it with the account.

Namespaces: ``webmail`` (key ``settings``: `Settings` as JSON), ``webmail.remote`` (key: a
lower-cased From: address; value ``1``), ``webmail.correspondents`` (key: lower-cased
address; value: `Correspondent` JSON; at most `MAX_CORRESPONDENTS`, the least recent go).
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

from mailsrv.ops.errors import InvalidInput
from mailsrv.store.interfaces import AccountStore, InvalidRequest

NS = "webmail"
NS_REMOTE = "webmail.remote"
NS_CORRESPONDENTS = "webmail.correspondents"
MAX_SIGNATURE = 10_000
MAX_CORRESPONDENTS = 2000
MAX_SUGGESTIONS = 20


class Settings(msgspec.Struct, kw_only=True):
    """The reader's choices. `show`: which part a message opens with when it has both;
    `remote`: "ask" (blocked, with a button; remembered per sender) or "never" (no button
    for senders not yet allowed) or "always"; `quoting`: where a reply's text goes relative
    to the quoted original ("bottom": below it, "top": above it)."""

    show: Literal["html", "text"] = "html"
    remote: Literal["ask", "never", "always"] = "ask"
    signature: str = ""
    quoting: Literal["bottom", "top"] = "bottom"
    threading: bool = True
    page_size: int = 50

    def check(self) -> Settings:
        if not 10 <= self.page_size <= 500:
            raise InvalidInput("page size: 10 to 500", field="page_size")
        if len(self.signature) > MAX_SIGNATURE:
            raise InvalidInput(f"signature: at most {MAX_SIGNATURE} characters", field="signature")
        return self


class Correspondent(msgspec.Struct, frozen=True):
    address: str
    name: str = ""
    last: int = 0  # seconds since the epoch
    count: int = 0


async def get_settings(store: AccountStore) -> Settings:
    raw = await store.get_data(NS, "settings")
    if raw is None:
        return Settings()
    try:
        return msgspec.json.decode(raw, type=Settings)
    except msgspec.DecodeError:
        return Settings()  # written by an older version with other fields: start afresh


async def set_settings(store: AccountStore, settings: Settings) -> Settings:
    settings.check()
    await store.put_data(NS, "settings", msgspec.json.encode(settings))
    return settings


def _address_key(address: str) -> str:
    address = address.strip()
    if not address or len(address) > 320 or "@" not in address:
        raise InvalidInput("not an address", field="address")
    return address.lower()


async def remote_allowed(store: AccountStore, address: str) -> bool:
    try:
        key = _address_key(address)
    except InvalidInput:
        return False
    return await store.get_data(NS_REMOTE, key) is not None


async def allow_remote(store: AccountStore, address: str, allow: bool) -> None:
    """Remembers (or forgets) that remote resources of mail from `address` may load."""
    try:
        await store.put_data(NS_REMOTE, _address_key(address), b"1" if allow else None)
    except InvalidRequest as e:
        raise InvalidInput(str(e), field="address") from None


async def note_correspondents(store: AccountStore, people: list[tuple[str, str]], now: int | None = None) -> None:
    """Records (name, address) pairs the user wrote to, for address completion."""
    now = int(time.time()) if now is None else now
    for name, address in people[:100]:
        try:
            key = _address_key(address)
        except InvalidInput:
            continue
        raw = await store.get_data(NS_CORRESPONDENTS, key)
        old = msgspec.json.decode(raw, type=Correspondent) if raw else Correspondent(address)
        entry = Correspondent(address=address, name=name or old.name, last=now, count=old.count + 1)
        await store.put_data(NS_CORRESPONDENTS, key, msgspec.json.encode(entry))
    entries = await store.list_data(NS_CORRESPONDENTS, limit=10_000)
    if len(entries) > MAX_CORRESPONDENTS:
        decoded = sorted(((msgspec.json.decode(v, type=Correspondent), k) for k, v in entries), key=lambda e: e[0].last)
        for _, key in decoded[: len(entries) - MAX_CORRESPONDENTS]:
            await store.put_data(NS_CORRESPONDENTS, key, None)


async def complete_address(store: AccountStore, prefix: str) -> list[Correspondent]:
    """Correspondents whose address or a word of whose name starts with `prefix` (case
    ignored), most used and most recent first."""
    needle = prefix.strip().lower()[:320]
    if not needle:
        return []
    out = []
    for _, value in await store.list_data(NS_CORRESPONDENTS, limit=10_000):
        c = msgspec.json.decode(value, type=Correspondent)
        words = [c.address.lower(), *c.name.lower().split()]
        if any(w.startswith(needle) for w in words) or c.name.lower().startswith(needle):
            out.append(c)
    out.sort(key=lambda c: (-c.count, -c.last))
    return out[:MAX_SUGGESTIONS]
