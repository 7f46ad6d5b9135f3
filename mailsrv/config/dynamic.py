"""The dynamic configuration: domains, accounts and aliases that change at run time.

`DynamicConfigStore` owns `data/dynamic.toml`. Every mutation builds the new document,
validates it with the same parser that loads the file, writes it atomically (temporary file
in the same directory, fsync, rename, fsync of the directory) and only then replaces
`.current` and notifies listeners. A crash leaves either the old or the new file, never a
mix. `reload_if_changed()` picks up edits made by hand; an invalid edit is logged and the
running configuration kept.

Invariants: `.current` is never mutated, only replaced, and always passed validation;
`_indexed` pairs a config with the map from every `Address.key()` of its account addresses
and aliases to the owner, replaced in one assignment together with `.current`, so `lookup`
is a dict access and a reader never sees a config with another config's index.

Threads: mutations run on the caller's thread and fsync. In the daemon they should run in
the thread pool (`deferToThread(store.add_account, ...)`): each mutation holds a lock from
reading `.current` to replacing it, so concurrent mutations never lose each other's changes,
and listeners are called through `call_in_reactor` (the daemon passes
`reactor.callFromThread`) so they always run on the reactor thread. Readers on the reactor
thread take no lock. `reload_if_changed` skips its turn while a mutation is writing.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

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
    StaticConfig,
)

log = Logger()

Listener = Callable[[DynamicConfig], None]
_F = TypeVar("_F", bound=Callable[..., Any])


def _mutation(method: _F) -> _F:
    """Runs a mutation under the store's lock: read, validate, write and replace as one step."""

    @functools.wraps(method)
    def locked(self: DynamicConfigStore, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_F, locked)


class DynamicConfigError(Exception):
    """A requested change is not possible; the message is shown to the admin as is."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replaces `path` with `data` so that a crash leaves the old or the new content.

    The temporary file is in the same directory (rename is atomic only within a file system),
    is fsynced before the rename, and the directory is fsynced after it so the rename itself
    survives a crash. An existing file's permission bits are kept; a new file is 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
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
    """Owner of the dynamic config file (see the module docstring).

    Built from the `StaticConfig` (the file is `static.dynamic_file`) or, for tools and
    tests, directly from the file's path. `call_in_reactor(f, config)` is how listeners are
    called (default: directly); the daemon passes `reactor.callFromThread`. Raises
    ConfigError when the file is invalid."""

    def __init__(
        self,
        static: StaticConfig | Path,
        *,
        call_in_reactor: Callable[[Callable[[DynamicConfig], None], DynamicConfig], object] | None = None,
    ) -> None:
        if isinstance(static, StaticConfig):
            self.static: StaticConfig | None = static
            self.path = static.dynamic_file
        else:
            self.static = None
            self.path = Path(static)
        # Accounts' routes must name mailsrv.toml's transports (None: a tool without it).
        self._transports = None if self.static is None else self.static.transports.names()
        self._listeners: list[Listener] = []
        self._call_in_reactor = call_in_reactor
        self._lock = threading.RLock()
        self.current = DynamicConfig()
        self._indexed: tuple[DynamicConfig, dict[str, AccountConfig | AliasConfig]] = (self.current, {})
        self._replace(self._load())
        self._stamp = self._file_stamp()

    def _load(self) -> DynamicConfig:
        if not self.path.exists():
            return DynamicConfig()
        return parse_dynamic(self.path, _read_toml(self.path), self._transports)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        # Not ctime: a chmod or chown is no change of content.
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @staticmethod
    def _build_index(config: DynamicConfig) -> dict[str, AccountConfig | AliasConfig]:
        index: dict[str, AccountConfig | AliasConfig] = {
            a.key(): acc for acc in config.accounts.values() for a in acc.addresses
        }
        index.update(config.aliases)  # keys are Address.key(); validation keeps them disjoint
        return index

    def _replace(self, config: DynamicConfig) -> None:
        self._indexed = (config, self._build_index(config))
        self.current = config

    def _index(self) -> dict[str, AccountConfig | AliasConfig]:
        indexed_config, index = self._indexed
        current = self.current
        if indexed_config is not current:
            # `.current` was assigned from outside (tests) or we raced a mutation's two
            # assignments: index what we see now.
            index = self._build_index(current)
            self._indexed = (current, index)
        return index

    # --- Observation ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Calls `listener(new_config)` after every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _set(self, config: DynamicConfig) -> None:
        self._replace(config)
        if self._call_in_reactor is None:
            self._notify(config)
        else:
            self._call_in_reactor(self._notify, config)

    def _notify(self, config: DynamicConfig) -> None:
        for listener in list(self._listeners):
            try:
                listener(config)
            except Exception:
                log.failure("dynamic config listener failed")

    def reload_if_changed(self) -> bool:
        """Reloads the file when it changed on disk (mtime, size or inode); True when a
        new config is in effect. An invalid file is logged and the running config kept; it is
        tried again only after it changes again. A file that disappeared is not taken as
        "no accounts" (every delivery would bounce): the running config is kept and the next
        change writes the file again. A file still being written (its stamp moves while we
        read it) is read again on the next call, as is everything while a mutation writes."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._reload_if_changed()
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> bool:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        if stamp is None:
            log.error("dynamic config {path} disappeared; keeping the running config", path=str(self.path))
            self._stamp = stamp
            return False
        try:
            config = parse_dynamic(self.path, _read_toml(self.path), self._transports)
        except ConfigError as e:
            if self._file_stamp() != stamp:
                return False  # caught mid-write by a non-atomic editor: try again next time
            self._stamp = stamp
            log.error("not reloading dynamic config: {error}", error=str(e))
            return False
        if self._file_stamp() != stamp:
            return False
        self._stamp = stamp
        self._set(config)
        log.info("dynamic config reloaded from {path}", path=str(self.path))
        return True

    # --- Lookups -------------------------------------------------------------------------
    def lookup(self, address: Address) -> AccountConfig | AliasConfig | None:
        """The account or alias that receives mail for `address`, compared by `Address.key()`
        (case-folded NFC localpart, A-label domain). The exact address wins; otherwise the
        domain's catchall separator is applied (`user+tag@d` -> `user@d`)."""
        index = self._index()
        found = index.get(address.key())
        if found is not None:
            return found
        domain = self.current.domains.get(address.domain.ascii)
        if domain is None or not domain.localpart_catchall_separator:
            return None
        stripped = address.strip_catchall(domain.localpart_catchall_separator)
        if stripped is address:
            return None
        return index.get(stripped.key())

    def is_local_domain(self, domain: Domain) -> bool:
        return domain.ascii in self.current.domains

    def account_by_name(self, name: str) -> AccountConfig | None:
        return self.current.accounts.get(name)

    # Older name of account_by_name, used by admin and SMTP code.
    account = account_by_name

    def addresses_of(self, account: str | AccountConfig) -> tuple[Address, ...]:
        """All addresses of an account (primary first); () for an unknown account."""
        acc = self.current.accounts.get(account) if isinstance(account, str) else account
        return acc.addresses if acc is not None else ()

    def alias(self, address: Address) -> AliasConfig | None:
        return self.current.aliases.get(address.key())

    # --- Mutations -----------------------------------------------------------------------
    def _commit(self, config: DynamicConfig) -> None:
        """Validates `config` by dumping and re-parsing it (the same rules as loading the
        file), writes it atomically, then makes it current and notifies listeners."""
        if self._file_stamp() != self._stamp:
            # Someone edited the file since we read it: writing now would silently undo their
            # edit. Take theirs (if valid) and let the caller retry on top of it.
            if self._reload_if_changed():
                raise DynamicConfigError(f"{self.path} changed on disk and was reloaded; try again")
            raise DynamicConfigError(
                f"{self.path} changed on disk but is invalid (see the log); fix it, or try again to overwrite it"
            )
        doc = dump_dynamic(config)
        try:
            parsed = parse_dynamic(self.path, doc, self._transports)
        except ConfigError as e:
            raise DynamicConfigError(e.problem if e.key == "" else f"{e.key}: {e.problem}") from None
        write_atomically(self.path, tomli_w.dumps(doc).encode("utf-8"))
        self._stamp = self._file_stamp()
        self._set(parsed)

    @_mutation
    def add_domain(
        self,
        name: str,
        catchall_separator: str | None = "+",
        description: str = "",
        dkim_selectors: tuple[str, ...] = (),
    ) -> DomainConfig:
        domain = _parse_domain(name)
        if domain.ascii in self.current.domains:
            raise DynamicConfigError(f"domain {domain.ascii} already exists")
        entry = DomainConfig(
            domain,
            localpart_catchall_separator=catchall_separator or None,
            description=description,
            dkim_selectors=dkim_selectors,
        )
        self._commit(replace(self.current, domains={**self.current.domains, domain.ascii: entry}))
        return self.current.domains[domain.ascii]

    @_mutation
    def set_domain_separator(self, name: str, separator: str | None) -> DomainConfig:
        """The localpart catchall separator ("+": user+tag@ reaches user@); None or "": none."""
        domain = _parse_domain(name)
        current = self.current.domains.get(domain.ascii)
        if current is None:
            raise DynamicConfigError(f"no such domain: {domain.ascii}")
        updated = replace(current, localpart_catchall_separator=separator or None)
        self._commit(replace(self.current, domains={**self.current.domains, domain.ascii: updated}))
        return self.current.domains[domain.ascii]

    # The per-domain settings `update_domain` changes (the others, name and DKIM selectors, have their own calls).
    DOMAIN_SETTINGS = frozenset(
        {
            "localpart_catchall_separator",
            "description",
            "dmarc_reports",
            "tlsrpt_reports",
            "mta_sts_mode",
            "mta_sts_max_age",
        }
    )

    @_mutation
    def update_domain(self, name: str, **changes: Any) -> DomainConfig:
        """Changes the given per-domain settings (DOMAIN_SETTINGS; None: the default), validated as
        when loading the file."""
        unknown = set(changes) - self.DOMAIN_SETTINGS
        if unknown:
            raise DynamicConfigError(f"not a domain setting: {', '.join(sorted(unknown))}")
        domain = _parse_domain(name)
        current = self.current.domains.get(domain.ascii)
        if current is None:
            raise DynamicConfigError(f"no such domain: {domain.ascii}")
        for key in ("dmarc_reports", "tlsrpt_reports"):
            if isinstance(changes.get(key), str):
                changes[key] = _parse_address(changes[key]) if changes[key] else None
        updated = replace(current, **changes)
        self._commit(replace(self.current, domains={**self.current.domains, domain.ascii: updated}))
        return self.current.domains[domain.ascii]

    @_mutation
    def remove_domain(self, name: str) -> None:
        """Refuses while an account, account address or alias still uses the domain."""
        domain = _parse_domain(name)
        if domain.ascii not in self.current.domains:
            raise DynamicConfigError(f"no such domain: {domain.ascii}")
        users = [a.name for a in self.current.accounts.values() if a.domain == domain]
        users += [
            f"{a.name} ({addr})"
            for a in self.current.accounts.values()
            if a.domain != domain
            for addr in a.addresses
            if addr.domain == domain
        ]
        users += [str(al.address) for al in self.current.aliases.values() if al.address.domain == domain]
        users += [
            f"{al.address} (member {m})"
            for al in self.current.aliases.values()
            if al.address.domain != domain
            for m in al.members
            if m.domain == domain
        ]
        if users:
            raise DynamicConfigError(f"domain {domain.ascii} is still used by: {', '.join(sorted(users))}")
        domains = dict(self.current.domains)
        del domains[domain.ascii]
        self._commit(replace(self.current, domains=domains))

    @_mutation
    def add_account(
        self, name: str, address: str | Address, full_name: str = "", quota: int | None = None
    ) -> AccountConfig:
        """A new account with `address` as its primary address (its domain is the account's)."""
        if name in self.current.accounts:
            raise DynamicConfigError(f"account {name} already exists")
        addr = _parse_address(address)
        account = AccountConfig(name, addr.domain, (addr,), full_name=full_name, quota=quota)
        self._commit(replace(self.current, accounts={**self.current.accounts, name: account}))
        return self.current.accounts[name]

    @_mutation
    def remove_account(self, name: str) -> None:
        self._require_account(name)
        accounts = dict(self.current.accounts)
        del accounts[name]
        self._commit(replace(self.current, accounts=accounts))

    def _require_account(self, name: str) -> AccountConfig:
        account = self.current.accounts.get(name)
        if account is None:
            raise DynamicConfigError(f"no such account: {name}")
        return account

    def _update_account(self, name: str, **changes: Any) -> AccountConfig:
        account = self._require_account(name)
        self._commit(replace(self.current, accounts={**self.current.accounts, name: replace(account, **changes)}))
        return self.current.accounts[name]

    @_mutation
    def set_account_quota(self, name: str, quota: int | None) -> AccountConfig:
        """`None`: the default quota of [limits]; 0: no limit."""
        return self._update_account(name, quota=quota)

    @_mutation
    def set_account_full_name(self, name: str, full_name: str) -> AccountConfig:
        """The display name used in From: of composed mail and shown on the account page."""
        return self._update_account(name, full_name=full_name)

    @_mutation
    def set_account_retired_keep(self, name: str, seconds: int) -> AccountConfig:
        """How long the queue keeps the account's finished messages (0: not kept)."""
        if seconds < 0:
            raise DynamicConfigError("retired_keep must be 0 or more seconds")
        return self._update_account(name, retired_keep=seconds)

    @_mutation
    def set_account_disabled(self, name: str, disabled: bool) -> AccountConfig:
        """A disabled account cannot log in; mail to it is still delivered."""
        return self._update_account(name, disabled=disabled)

    @_mutation
    def set_account_fromid_addresses(self, name: str, addresses: Iterable[str | Address]) -> AccountConfig:
        """The login addresses whose submissions use fromid MAIL FROMs (each the account's own)."""
        account = self._require_account(name)
        own = {a.key() for a in account.addresses}
        parsed = tuple(_parse_address(a) for a in addresses)
        for a in parsed:
            if a.key() not in own:
                raise DynamicConfigError(f"{a} is not an address of account {name}")
        return self._update_account(name, fromid_login_addresses=parsed)

    @_mutation
    def add_address(self, name: str, address: str | Address) -> AccountConfig:
        account = self._require_account(name)
        addr = _parse_address(address)
        return self._update_account(name, addresses=(*account.addresses, addr))

    @_mutation
    def remove_address(self, name: str, address: str | Address) -> AccountConfig:
        """Refuses to remove an account's last address."""
        account = self._require_account(name)
        key = _parse_address(address).key()
        remaining = tuple(a for a in account.addresses if a.key() != key)
        if len(remaining) == len(account.addresses):
            raise DynamicConfigError(f"account {name} has no address {address}")
        if not remaining:
            raise DynamicConfigError("an account keeps at least one address")
        fromid = tuple(a for a in account.fromid_login_addresses if a.key() != key)
        return self._update_account(name, addresses=remaining, fromid_login_addresses=fromid)

    @_mutation
    def add_alias(
        self,
        address: str | Address,
        members: Iterable[str | Address] = (),
        *,
        post_public: bool = False,
        list_members: bool = False,
        allow_msg_from: bool = False,
    ) -> AliasConfig:
        addr = _parse_address(address)
        if addr.key() in self.current.aliases:
            raise DynamicConfigError(f"alias {addr} already exists")
        alias = AliasConfig(
            addr,
            tuple(_parse_address(m) for m in members),
            post_public=post_public,
            list_members=list_members,
            allow_msg_from=allow_msg_from,
        )
        self._commit(replace(self.current, aliases={**self.current.aliases, addr.key(): alias}))
        return self.current.aliases[addr.key()]

    @_mutation
    def remove_alias(self, address: str | Address) -> None:
        alias = self._require_alias(address)
        aliases = dict(self.current.aliases)
        del aliases[alias.address.key()]
        self._commit(replace(self.current, aliases=aliases))

    def _require_alias(self, address: str | Address) -> AliasConfig:
        addr = _parse_address(address)
        alias = self.current.aliases.get(addr.key())
        if alias is None:
            raise DynamicConfigError(f"no such alias: {addr}")
        return alias

    def _update_alias(self, alias: AliasConfig, **changes: Any) -> AliasConfig:
        key = alias.address.key()
        self._commit(replace(self.current, aliases={**self.current.aliases, key: replace(alias, **changes)}))
        return self.current.aliases[key]

    @_mutation
    def add_alias_member(self, address: str | Address, member: str | Address) -> AliasConfig:
        alias = self._require_alias(address)
        return self._update_alias(alias, members=(*alias.members, _parse_address(member)))

    @_mutation
    def remove_alias_member(self, address: str | Address, member: str | Address) -> AliasConfig:
        alias = self._require_alias(address)
        key = _parse_address(member).key()
        remaining = tuple(m for m in alias.members if m.key() != key)
        if len(remaining) == len(alias.members):
            raise DynamicConfigError(f"alias {alias.address} has no member {member}")
        return self._update_alias(alias, members=remaining)

    @_mutation
    def set_alias_options(
        self,
        address: str | Address,
        *,
        post_public: bool | None = None,
        list_members: bool | None = None,
        allow_msg_from: bool | None = None,
    ) -> AliasConfig:
        """Changes the options given (None leaves an option as it is)."""
        alias = self._require_alias(address)
        changes = {
            k: v
            for k, v in (
                ("post_public", post_public),
                ("list_members", list_members),
                ("allow_msg_from", allow_msg_from),
            )
            if v is not None
        }
        return self._update_alias(alias, **changes)


def _parse_domain(name: str | Domain) -> Domain:
    if isinstance(name, Domain):
        return name
    try:
        return Domain.parse(name)
    except AddressError as e:
        raise DynamicConfigError(str(e)) from None


def _parse_address(text: str | Address) -> Address:
    if isinstance(text, Address):
        return text
    try:
        return Address.parse(text)
    except AddressError as e:
        raise DynamicConfigError(f"invalid address {text!r}: {e}") from None
