"""The dynamic configuration: domains, accounts and aliases that change at run time.

`DynamicConfigStore` owns `data/dynamic.toml`. Every mutation builds the new document,
validates it with the same parser that loads the file, writes it atomically (temporary file
in the same directory, fsync, rename, fsync of the directory) and only then replaces
`.current` and notifies listeners. A crash leaves either the old or the new file, never a
mix. `reload_if_changed()` picks up edits made by hand; an invalid edit is logged and the
running configuration kept.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomli_w
from twisted.logger import Logger

from mailsrv.address import Address, AddressError, Domain
from mailsrv.config.load import _read_toml, dump_dynamic, parse_dynamic
from mailsrv.config.types import (
    AccountConfig,
    AliasConfig,
    ConfigError,
    DomainConfig,
    DynamicConfig,
)

log = Logger()

Listener = Callable[[DynamicConfig], None]


class DynamicConfigError(Exception):
    """A requested change is not possible; the message is shown to the admin as is."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replaces `path` with `data` so that a crash leaves the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DynamicConfigStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._listeners: list[Listener] = []
        self.current = self._load()
        self._stamp = self._file_stamp()

    def _load(self) -> DynamicConfig:
        if not self.path.exists():
            return DynamicConfig()
        return parse_dynamic(self.path, _read_toml(self.path))

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    # --- Observation ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _set(self, config: DynamicConfig) -> None:
        self.current = config
        for listener in list(self._listeners):
            try:
                listener(config)
            except Exception:
                log.failure("dynamic config listener failed")

    def reload_if_changed(self) -> bool:
        """Reloads the file when it changed on disk; True when a new config is in effect."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            config = self._load()
        except ConfigError as e:
            log.error("not reloading dynamic config: {error}", error=str(e))
            return False
        self._set(config)
        log.info("dynamic config reloaded from {path}", path=str(self.path))
        return True

    # --- Lookups -------------------------------------------------------------------------
    def lookup(self, address: Address) -> AccountConfig | AliasConfig | None:
        """The account or alias that receives mail for `address`. The exact address wins;
        otherwise the domain's catchall separator is applied (`user+tag@d` -> `user@d`)."""
        found = self._lookup_exact(address)
        if found is not None:
            return found
        domain = self.current.domains.get(address.domain.ascii)
        if domain is None or not domain.localpart_catchall_separator:
            return None
        stripped = address.strip_catchall(domain.localpart_catchall_separator)
        if stripped == address:
            return None
        return self._lookup_exact(stripped)

    def _lookup_exact(self, address: Address) -> AccountConfig | AliasConfig | None:
        key = address.key()
        alias = self.current.aliases.get(key)
        if alias is not None:
            return alias
        return self._address_index().get(key)

    def _address_index(self) -> dict[str, AccountConfig]:
        # Rebuilt lazily once per config object: DynamicConfig is replaced, never mutated.
        cached = getattr(self, "_index_for", None)
        if cached is not self.current:
            self._index = {a.key(): acc for acc in self.current.accounts.values() for a in acc.addresses}
            self._index_for = self.current
        return self._index

    def is_local_domain(self, domain: Domain) -> bool:
        return domain.ascii in self.current.domains

    def account(self, name: str) -> AccountConfig | None:
        return self.current.accounts.get(name)

    # --- Mutations -----------------------------------------------------------------------
    def _commit(self, doc: dict[str, Any]) -> None:
        try:
            config = parse_dynamic(self.path, doc)
        except ConfigError as e:
            raise DynamicConfigError(e.problem if e.key == "" else f"{e.key}: {e.problem}") from None
        write_atomically(self.path, tomli_w.dumps(doc).encode("utf-8"))
        self._stamp = self._file_stamp()
        self._set(config)

    def _doc(self) -> dict[str, Any]:
        return dump_dynamic(self.current)

    def add_domain(self, name: str, catchall_separator: str | None = "+", description: str = "") -> DomainConfig:
        try:
            domain = Domain.parse(name)
        except AddressError as e:
            raise DynamicConfigError(str(e)) from None
        if domain.ascii in self.current.domains:
            raise DynamicConfigError(f"domain {domain.ascii} already exists")
        doc = self._doc()
        entry: dict[str, Any] = {"localpart_catchall_separator": catchall_separator or ""}
        if description:
            entry["description"] = description
        doc["domains"][domain.ascii] = entry
        self._commit(doc)
        return self.current.domains[domain.ascii]

    def remove_domain(self, name: str) -> None:
        try:
            domain = Domain.parse(name)
        except AddressError as e:
            raise DynamicConfigError(str(e)) from None
        if domain.ascii not in self.current.domains:
            raise DynamicConfigError(f"no such domain: {domain.ascii}")
        users = [a.name for a in self.current.accounts.values() if a.domain == domain]
        users += [str(al.address) for al in self.current.aliases.values() if al.address.domain == domain]
        if users:
            raise DynamicConfigError(f"domain {domain.ascii} is still used by: {', '.join(sorted(users))}")
        doc = self._doc()
        del doc["domains"][domain.ascii]
        self._commit(doc)

    def add_account(self, name: str, address: str, full_name: str = "", quota: int | None = None) -> AccountConfig:
        if name in self.current.accounts:
            raise DynamicConfigError(f"account {name} already exists")
        try:
            addr = Address.parse(address)
        except AddressError as e:
            raise DynamicConfigError(f"invalid address {address!r}: {e}") from None
        doc = self._doc()
        entry: dict[str, Any] = {"domain": addr.domain.ascii, "addresses": [addr.display()]}
        if full_name:
            entry["full_name"] = full_name
        if quota is not None:
            entry["quota"] = quota
        doc["accounts"][name] = entry
        self._commit(doc)
        return self.current.accounts[name]

    def remove_account(self, name: str) -> None:
        if name not in self.current.accounts:
            raise DynamicConfigError(f"no such account: {name}")
        doc = self._doc()
        del doc["accounts"][name]
        self._commit(doc)

    def _update_account(self, name: str, **changes: Any) -> None:
        account = self.current.accounts.get(name)
        if account is None:
            raise DynamicConfigError(f"no such account: {name}")
        accounts = dict(self.current.accounts)
        accounts[name] = replace(account, **changes)
        doc = dump_dynamic(replace(self.current, accounts=accounts))
        self._commit(doc)

    def set_account_quota(self, name: str, quota: int | None) -> None:
        self._update_account(name, quota=quota)

    def add_address(self, name: str, address: str) -> None:
        account = self.current.accounts.get(name)
        if account is None:
            raise DynamicConfigError(f"no such account: {name}")
        try:
            addr = Address.parse(address)
        except AddressError as e:
            raise DynamicConfigError(f"invalid address {address!r}: {e}") from None
        self._update_account(name, addresses=(*account.addresses, addr))

    def remove_address(self, name: str, address: str) -> None:
        account = self.current.accounts.get(name)
        if account is None:
            raise DynamicConfigError(f"no such account: {name}")
        try:
            key = Address.parse(address).key()
        except AddressError as e:
            raise DynamicConfigError(f"invalid address {address!r}: {e}") from None
        remaining = tuple(a for a in account.addresses if a.key() != key)
        if len(remaining) == len(account.addresses):
            raise DynamicConfigError(f"account {name} has no address {address}")
        if not remaining:
            raise DynamicConfigError("an account keeps at least one address")
        self._update_account(name, addresses=remaining)

    def set_aliases(self, aliases: dict[str, AliasConfig]) -> None:
        """Replaces all aliases at once (the alias CLI builds on this)."""
        self._commit(dump_dynamic(replace(self.current, aliases=aliases)))
