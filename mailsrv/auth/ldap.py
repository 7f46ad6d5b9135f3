"""Accounts from an LDAP directory (OpenLDAP, Active Directory) through ldap3.

Invariants:
- Every directory call is blocking (ldap3's sync strategy) and runs in the reactor's thread
  pool, at most POOL_SIZE at once; the reactor never waits on the network.
- Values put into search filters are escaped per RFC 4515 (`escape_filter_chars`), so no
  login name or address can change the filter (`*)(uid=*` finds nothing).
- Passwords are verified by a simple bind as the user's entry, never by comparing hashes;
  an empty password is refused before any bind (an empty simple bind is an anonymous bind,
  RFC 4513 §5.1.2, which would "succeed").
- TLS is required by default (StartTLS on ldap://, or ldaps://), verified against the
  configured CA file or the system trust store. URIs are tried in order (failover).
- When the directory cannot be reached, logins fail with TemporaryAuthFailure (IMAP
  NO [UNAVAILABLE], SMTP 454 4.7.0) and address lookups fall back to a bounded cache of
  addresses seen before, so mail keeps arriving; an unknown address then answers 451, never
  550. An entry the directory says is gone is refused at once.
- A login by registered TLS client key asks the directory at every connection
  (`login_for_account`, by the account attribute): a deleted entry, or one taken out of the
  mail group or the user filter, stops such logins at once; an unreachable directory makes
  them fail temporarily, never succeed.
- No SCRAM or CRAM-MD5: the directory holds no salted secret for us.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from twisted.internet.defer import Deferred, DeferredSemaphore, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from mailsrv.address import Address, AddressError
from mailsrv.auth.interfaces import (
    InvalidCredentials,
    LoginIdentity,
    MechanismUnavailable,
    ScramSecret,
    TemporaryAuthFailure,
)
from mailsrv.config.types import LDAPConfig

log = Logger()

CACHE_ENTRIES = 10_000
# A placeholder next to a wildcard (`(mail=*{address})`) would make "**", which RFC 4515
# does not allow; one "*" means the same there.
_WILDCARDS = re.compile(r"\*{2,}")
POOL_SIZE = 4


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    account: str
    addresses: tuple[Address, ...]
    display_name: str
    quota: int | None


class _Unavailable(Exception):
    pass


class LDAPDirectory:
    """Blocking directory operations (run them in a thread)."""

    def __init__(self, config: LDAPConfig) -> None:
        self.config = config
        self._tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(config.ca_file) if config.ca_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self._password: str | None = None
        if config.bind_password_file is not None:
            self._password = config.bind_password_file.read_text().strip()
        self._pool: list[ldap3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self, user: str | None, password: str | None) -> ldap3.Connection:
        """A bound connection to the first server that answers. Raises _Unavailable, or
        InvalidCredentials when the bind itself is refused."""
        last: Exception | None = None
        for uri in self.config.uris:
            # A fresh Server each time: ldap3 remembers an address that failed once as
            # unavailable for good, which would outlive a directory restart.
            server = ldap3.Server(
                uri, use_ssl=uri.startswith("ldaps://"), tls=self._tls, connect_timeout=max(1, int(self.config.timeout))
            )
            conn = ldap3.Connection(
                server,
                user=user,
                password=password,
                # ldap3 packs this into SO_RCVTIMEO as an integer.
                receive_timeout=max(1, int(self.config.timeout)),
                raise_exceptions=False,
                read_only=True,
            )
            if self.config.require_tls and not server.ssl and not self.config.starttls:
                # Never send a password in clear when TLS is required (the default).
                last = _Unavailable(f"{uri}: TLS required but neither ldaps:// nor starttls = true")
                continue
            try:
                conn.open()  # raises on failure; returns nothing useful
                if self.config.starttls and not server.ssl and not conn.start_tls():
                    if self.config.require_tls:
                        raise _Unavailable(f"StartTLS failed: {conn.result}")
                if not conn.bind():
                    result = conn.result or {}
                    conn.unbind()
                    if result.get("result") == 49:  # invalidCredentials
                        raise InvalidCredentials()
                    raise _Unavailable(f"bind failed: {result.get('description')}")
                return conn
            except InvalidCredentials:
                raise
            except Exception as e:  # ldap3 raises more than LDAPException on network trouble
                last = e
                try:
                    conn.unbind()
                except Exception:
                    pass
                continue
        raise _Unavailable(str(last))

    def _service(self) -> ldap3.Connection:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        try:
            return self._connect(self.config.bind_dn or None, self._password)
        except InvalidCredentials:
            # A refused service bind is a configuration fault, not the user's wrong password:
            # temporary for the peer, loud in the log.
            raise _Unavailable(
                "the directory refused the service account's bind (bind_dn / bind_password_file)"
            ) from None

    def _release(self, conn: ldap3.Connection) -> None:
        with self._lock:
            if len(self._pool) < POOL_SIZE and not conn.closed:
                self._pool.append(conn)
                return
        conn.unbind()

    def _drop_pool(self) -> None:
        """After a failure the pooled connections are suspect (the server may have gone)."""
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            try:
                conn.unbind()
            except Exception:
                pass

    def _search(self, base: str, search_filter: str, attributes: list[str], scope: Any = ldap3.SUBTREE) -> list[Any]:
        for attempt in range(2):
            conn = self._service()
            try:
                ok = conn.search(base, search_filter, search_scope=scope, attributes=attributes, size_limit=2)
            except (ldap_errors.LDAPException, OSError) as e:
                conn.unbind()
                self._drop_pool()
                if attempt == 0:
                    continue  # a pooled connection the server closed: once more, fresh
                raise _Unavailable(str(e)) from None
            result = conn.result or {}
            if not ok and result.get("result") not in (0, 32, 4):  # success, noSuchObject, sizeLimit
                conn.unbind()
                self._drop_pool()
                if attempt == 0:
                    continue
                raise _Unavailable(f"search failed: {result.get('description')}")
            entries = list(conn.entries)
            self._release(conn)
            return entries
        raise _Unavailable("search failed")

    def find(self, name: str, mail_users_only: bool = True) -> DirectoryUser | None:
        """The entry for a login name or address, or None when the directory has none (or
        more than one, or it is not in the mail group: administrators need not be mail users,
        their lookups pass mail_users_only=False)."""
        value = escape_filter_chars(name)
        search_filter = self.config.user_filter.replace("{address}", value).replace("{username}", value)
        return self._find_one(search_filter, mail_users_only)

    def find_account(self, account: str) -> DirectoryUser | None:
        """The entry whose account attribute is `account`, when the configured filter would
        find it for some login name and it is in the mail group; else None (as `find`).

        The user filter's placeholders become presence tests (`(mail={address})` →
        `(mail=*)`), so its fixed conditions (object class, a lock attribute) still apply,
        and the entry is then picked by its account attribute alone, never by an address
        or another entry's name."""
        c = self.config
        fixed = _WILDCARDS.sub("*", c.user_filter.replace("{address}", "*").replace("{username}", "*"))
        return self._find_one(f"(&{fixed}({c.account_attribute}={escape_filter_chars(account)}))")

    def _find_one(self, search_filter: str, mail_users_only: bool = True) -> DirectoryUser | None:
        c = self.config
        attributes = [c.account_attribute, *c.address_attributes, c.display_name_attribute]
        if c.quota_attribute:
            attributes.append(c.quota_attribute)
        entries = self._search(c.user_base, search_filter, attributes)
        if len(entries) != 1:
            return None
        entry = entries[0]
        dn = entry.entry_dn
        if mail_users_only and c.mail_group_dn and not self._is_member(dn, c.mail_group_dn):
            return None
        values = entry.entry_attributes_as_dict
        account_values = values.get(c.account_attribute) or []
        if not account_values:
            return None
        addresses: list[Address] = []
        for attr in c.address_attributes:
            for text in values.get(attr) or []:
                try:
                    addresses.append(Address.parse(str(text)))
                except AddressError:
                    log.warn("directory entry {dn} has an invalid address {text!r}", dn=dn, text=str(text))
        quota = None
        if c.quota_attribute and values.get(c.quota_attribute):
            try:
                quota = int(values[c.quota_attribute][0])
            except (TypeError, ValueError):
                quota = None
        display = values.get(c.display_name_attribute) or [""]
        return DirectoryUser(dn, str(account_values[0]), tuple(addresses), str(display[0]), quota)

    def _is_member(self, dn: str, group_dn: str) -> bool:
        search_filter = f"(|(member={escape_filter_chars(dn)})(uniqueMember={escape_filter_chars(dn)}))"
        return bool(self._search(group_dn, search_filter, ["cn"], scope=ldap3.BASE))

    def is_admin(self, user: DirectoryUser) -> bool:
        """Whether the entry is in admin_group_dn (the web admin interface's administrators)."""
        group = self.config.admin_group_dn
        return group is not None and self._is_member(user.dn, group)

    def verify(self, user: DirectoryUser, password: str) -> None:
        """Simple bind as the user's DN. Raises InvalidCredentials or _Unavailable."""
        conn = self._connect(user.dn, password)
        conn.unbind()


class LDAPAccountProvider:
    """`AccountProvider` over a directory. Methods return Deferreds; the directory work
    runs in the reactor's thread pool."""

    def __init__(self, config: LDAPConfig, reactor: Any) -> None:
        self.config = config
        self.directory = LDAPDirectory(config)
        self._reactor = reactor
        self._slots = DeferredSemaphore(POOL_SIZE)
        # address key -> (account, time seen): delivery keeps working while the directory is down.
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._seen_lock = threading.Lock()  # lookups run in several pool threads
        # account -> quota from the directory's quota attribute, as last seen (RFC 9208 limits).
        self._quotas: dict[str, int | None] = {}

    def quota_for(self, account: str) -> int | None:
        """The storage limit the directory gave for `account` when it was last looked up
        (None: none set, or not seen yet; the default quota then applies)."""
        return self._quotas.get(account)

    def _remember(self, user: DirectoryUser) -> None:
        self._quotas[user.account] = user.quota

    def _in_thread(self, fn: Any, *args: Any) -> Deferred[Any]:
        # At most POOL_SIZE directory calls hold threads of the shared pool at once: a directory
        # that times out must not starve the store's fsyncs of threads.
        return self._slots.run(deferToThreadPool, self._reactor, self._reactor.getThreadPool(), fn, *args)

    def _identity(self, user: DirectoryUser, name: str) -> LoginIdentity:
        address = user.addresses[0] if user.addresses else None
        if "@" in name:
            try:
                given = Address.parse(name)
                address = next((a for a in user.addresses if a.key() == given.key()), address)
            except AddressError:
                pass
        return LoginIdentity(user.account, address)

    def _find_or_fail(self, name: str) -> DirectoryUser | None:
        try:
            return self.directory.find(name)
        except _Unavailable as e:
            log.warn("directory unavailable: {error}", error=str(e))
            raise TemporaryAuthFailure("directory unavailable") from None

    def resolve_login(self, username: str) -> Deferred[LoginIdentity | None]:
        def run() -> LoginIdentity | None:
            user = self._find_or_fail(username)
            return self._identity(user, username) if user is not None else None

        return self._in_thread(run)

    def check_password(self, username: str, password: str) -> Deferred[LoginIdentity]:
        if not password or not username:
            return fail(InvalidCredentials())

        def run() -> LoginIdentity:
            user = self._find_or_fail(username)
            if user is None:
                raise InvalidCredentials()
            self._remember(user)
            try:
                self.directory.verify(user, password)
            except _Unavailable:
                raise TemporaryAuthFailure("directory unavailable") from None
            return self._identity(user, username)

        return self._in_thread(run)

    def is_admin(self, username: str) -> Deferred[bool]:
        """Whether the login name's entry is in admin_group_dn (False without one), mail user
        or not. Fails with TemporaryAuthFailure when the directory cannot answer."""

        def run() -> bool:
            try:
                user = self.directory.find(username, mail_users_only=False)
                return user is not None and self.directory.is_admin(user)
            except _Unavailable:
                raise TemporaryAuthFailure("directory unavailable") from None

        return self._in_thread(run)

    def admin_login(self, username: str, password: str) -> Deferred[str]:
        """The account name of an administrator: the entry found for `username` (in the mail
        group or not) accepts `password` in a bind and is in admin_group_dn. Fails with
        InvalidCredentials (no such entry, wrong password, not in the group; one answer for
        all) or TemporaryAuthFailure."""
        if not password or not username or self.config.admin_group_dn is None:
            return fail(InvalidCredentials())

        def run() -> str:
            try:
                user = self.directory.find(username, mail_users_only=False)
                if user is None:
                    raise InvalidCredentials()
                self.directory.verify(user, password)
                if not self.directory.is_admin(user):
                    raise InvalidCredentials()
            except _Unavailable:
                raise TemporaryAuthFailure("directory unavailable") from None
            return user.account

        return self._in_thread(run)

    def login_for_account(self, account: str, address: Address | None = None) -> Deferred[LoginIdentity | None]:
        if not account:
            return succeed(None)

        def run() -> LoginIdentity | None:
            try:
                user = self.directory.find_account(account)
            except _Unavailable as e:
                log.warn("directory unavailable: {error}", error=str(e))
                raise TemporaryAuthFailure("directory unavailable") from None
            if user is None:
                return None
            self._remember(user)
            if address is None:
                return LoginIdentity(user.account, user.addresses[0] if user.addresses else None)
            listed = next((a for a in user.addresses if a.key() == address.key()), None)
            return LoginIdentity(user.account, listed) if listed is not None else None

        return self._in_thread(run)

    def scram_secret(self, username: str, hash_name: str) -> Deferred[tuple[LoginIdentity, ScramSecret]]:
        return fail(MechanismUnavailable("SCRAM needs a stored secret; the directory has none"))

    def cram_md5_secret(self, username: str) -> Deferred[tuple[LoginIdentity, bytes]]:
        return fail(MechanismUnavailable("CRAM-MD5 needs a stored secret; the directory has none"))

    def supports_stored_secrets(self) -> bool:
        return False

    def account_for_address(self, address: Address) -> Deferred[str | None]:
        key = address.key()

        def run() -> str | None:
            try:
                user = self.directory.find(str(address))
            except _Unavailable:
                with self._seen_lock:
                    cached = self._seen.get(key)
                if cached is not None and time.monotonic() - cached[1] < self.config.cache_seconds:
                    return cached[0]
                raise TemporaryAuthFailure("directory unavailable") from None
            if user is not None:
                self._remember(user)
            with self._seen_lock:
                if user is None:
                    self._seen.pop(key, None)
                    return None
                self._seen[key] = (user.account, time.monotonic())
                self._seen.move_to_end(key)
                while len(self._seen) > CACHE_ENTRIES:
                    self._seen.popitem(last=False)
            return user.account

        return self._in_thread(run)


def make_provider(config: LDAPConfig, reactor: Any) -> LDAPAccountProvider:
    return LDAPAccountProvider(config, reactor)
