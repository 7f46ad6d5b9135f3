# mypy: disable-error-code="no-untyped-call"
# (twisted.web's Request methods are unannotated.)
"""Web sessions: a persistent store, the session and login-token cookies, the CSRF token,
and the `LoginPrep`/`Login`/`Logout` API methods every session interface shares.

- `SessionStore`: SQLite at `DATA_DIR/websessions.db` (0600). A row keeps the SHA-256 of the
  session token and of its CSRF token, never the tokens: a stolen file logs nobody in.
  Looking a session up hashes the presented token once (SHA-256, no password hashing) and
  finds the row by that hash; the CSRF token is compared in constant time. Sessions slide
  (`[web] session_idle_timeout` since the last use) within an absolute limit
  (`[web] session_max_age` since login); `last_used` is written at most once a minute per
  session. Commits run on the reactor thread without fsync (WAL, synchronous=NORMAL): a
  crash may forget a fresh login or a slide, never make a session valid.
- `SessionAPI`: the base class of an interface's API with sessions, parameterised by an
  `Authenticator` (the account interfaces: `account_login`, through ops.login with its rate
  limits and credentials cache; admin brings its own). `LoginPrep` sets the login-token
  cookie and returns the token; `Login(token, username, password)` needs both to match,
  creates the session, sets the session cookie (HttpOnly, SameSite=Strict, Path=the
  interface, Secure over HTTPS) and returns the CSRF token, which the page sends as the
  `x-mailsrv-csrf` header on every call (form posts: field `csrf`). No cookie → user:noAuth;
  an unknown or expired session, or a missing or wrong CSRF token → user:badAuth.
  TLS client certificates never log in on the web: a session starts only with `Login`. A session
  of an account that was disabled or removed since (CLI, admin pages) is refused and deleted.
- Credential generations: a session carries its principal's generation from auth.db
  (`CredentialStore.generation`, bumped by every password change, removal and disabling, and
  by `setadminpassword` for the admin); a session whose generation is no longer current is
  refused and deleted. The CLI may change a password without the daemon (its own process):
  the check is a dict lookup, and the cache is refreshed when SQLite's data_version says
  another connection wrote auth.db. An LDAP password change is not seen (the directory's).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailsrv.auth.credentials import ADMIN_PASSWORD_GENERATION
from mailsrv.ops.adminauth import ADMIN_LOGIN
from mailsrv.ops.login import account_active
from mailsrv.server import Server
from mailsrv.web.jsonapi import ApiError, ApiInterface, Call, api, bad_auth, no_auth

SESSION_COOKIE = b"mailsrvsession"
LOGIN_COOKIE = b"mailsrvlogin"
CSRF_HEADER = b"x-mailsrv-csrf"
CSRF_FIELD = b"csrf"
LOGIN_TOKEN_LIFETIME = 3600  # seconds between LoginPrep and Login
SLIDE_WRITE_INTERVAL = 60  # seconds: last_used is persisted at most this often per session

# (server, peer ip, username, password) → the principal, or an ops error (AuthFailed, RateLimited, ...).
Authenticator = Callable[[Server, str, str, str], Awaitable[str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    token_hash BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    csrf_hash BLOB NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_principal ON session (kind, principal);
"""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass
class Session:
    token_hash: bytes
    kind: str  # "account", "admin": which interfaces it is valid for
    principal: str
    csrf_hash: bytes
    created: float
    last_used: float
    # The principal's credential generation at login (CredentialStore.generation): a password
    # change, removal or disabling since, in this process or another (the CLI), ends the session.
    generation: int = 0

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(_hash(presented), self.csrf_hash)


class SessionStore:
    def __init__(self, data_dir: Path, clock: Callable[[], float], idle_timeout: float, max_age: float) -> None:
        self.path = Path(data_dir) / "websessions.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(session)")}
        if "generation" not in columns:
            # Sessions from before generations: made under generation 0, the next change ends them.
            self.db.execute("ALTER TABLE session ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self.db.close()

    def create(self, kind: str, principal: str, generation: int = 0) -> tuple[str, str, Session]:
        """A new session: (session token, CSRF token, the session). Purges expired ones."""
        now = self.clock()
        self._purge(now)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        session = Session(_hash(token), kind, principal, _hash(csrf), now, now, generation)
        self.db.execute(
            "INSERT INTO session (token_hash, kind, principal, csrf_hash, created, last_used, generation)"
            " VALUES (?,?,?,?,?,?,?)",
            (session.token_hash, kind, principal, session.csrf_hash, now, now, generation),
        )
        return token, csrf, session

    def lookup(self, token: str) -> Session | None:
        """The live session of a token, extended (sliding); None when unknown or expired."""
        token_hash = _hash(token)
        row = self.db.execute(
            "SELECT kind, principal, csrf_hash, created, last_used, generation FROM session WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        session = Session(token_hash, row[0], row[1], bytes(row[2]), row[3], row[4], row[5])
        now = self.clock()
        if now - session.last_used > self.idle_timeout or now - session.created > self.max_age:
            self.db.execute("DELETE FROM session WHERE token_hash = ?", (token_hash,))
            return None
        if now - session.last_used >= SLIDE_WRITE_INTERVAL:
            session.last_used = now
            self.db.execute("UPDATE session SET last_used = ? WHERE token_hash = ?", (now, token_hash))
        return session

    def set_generation(self, session: Session, generation: int) -> None:
        """Keeps `session` valid across a change it made itself (its own password change)."""
        session.generation = generation
        self.db.execute("UPDATE session SET generation = ? WHERE token_hash = ?", (generation, session.token_hash))

    def delete(self, session: Session) -> None:
        self.db.execute("DELETE FROM session WHERE token_hash = ?", (session.token_hash,))

    def delete_others(self, session: Session) -> int:
        """Ends every other session of the same principal (password change); returns how many."""
        cursor = self.db.execute(
            "DELETE FROM session WHERE kind = ? AND principal = ? AND token_hash != ?",
            (session.kind, session.principal, session.token_hash),
        )
        return cursor.rowcount

    def delete_principal(self, kind: str, principal: str) -> int:
        """Ends every session of a principal (account removed or disabled)."""
        return self.db.execute("DELETE FROM session WHERE kind = ? AND principal = ?", (kind, principal)).rowcount

    def _purge(self, now: float) -> None:
        self.db.execute(
            "DELETE FROM session WHERE last_used < ? OR created < ?", (now - self.idle_timeout, now - self.max_age)
        )


def session_store(server: Server) -> SessionStore:
    """The server's session store, opened on first use (shared by every listener and interface)."""
    store = server.web_sessions
    if store is None:
        web = server.config.web
        store = SessionStore(
            server.config.data_dir, server.reactor.seconds, web.session_idle_timeout, web.session_max_age
        )
        server.web_sessions = store
    assert isinstance(store, SessionStore)
    return store


async def account_login(server: Server, peer: str, username: str, password: str) -> str:
    """The account interfaces' authenticator: the one login policy (rate limits, credentials
    cache), without a client certificate (the web never logs in by certificate)."""
    from mailsrv.ops.login import Peer, password_login

    identity = await password_login(server, Peer(peer), username, password)
    return identity.account


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) and value else None


def _cookie(request: Any, name: bytes) -> str | None:
    value = request.getCookie(name)
    return value.decode("ascii", "replace") if value else None


class SessionAPI(ApiInterface):
    """An API whose methods need a session of `kind`, logged in with `authenticator`.
    `cookie_path` is the interface's URL path (the cookies are sent there only)."""

    def __init__(self, server: Server, kind: str, cookie_path: str, authenticator: Authenticator) -> None:
        super().__init__(server)
        self.kind = kind
        self.cookie_path = cookie_path.encode("ascii")
        self.authenticator = authenticator
        self.sessions = session_store(server)

    # --- helpers for subclasses and upload/download resources -----------------------------------

    def session_of(self, request: Any, csrf: str | None) -> Session:
        """The request's live session of this interface's kind with a matching CSRF token;
        ApiError (noAuth/badAuth) otherwise."""
        token = _cookie(request, SESSION_COOKIE)
        if token is None:
            raise no_auth()
        session = self.sessions.lookup(token)
        if session is None or session.kind != self.kind:
            self._set_cookie(request, SESSION_COOKIE, b"", expire=True)
            raise bad_auth()
        if self.kind == "account" and not account_active(self.server, session.principal):
            # Disabled or removed meanwhile (by the CLI, the admin pages or the config file).
            self.sessions.delete_principal(session.kind, session.principal)
            self._set_cookie(request, SESSION_COOKIE, b"", expire=True)
            raise bad_auth("the account is disabled or no longer exists")
        if session.generation != self.generation(session.principal):
            # The password changed (or the account was disabled) since the login, maybe by the CLI.
            self.sessions.delete(session)
            self._set_cookie(request, SESSION_COOKIE, b"", expire=True)
            raise bad_auth("the password changed since this login: log in again")
        if not session.csrf_matches(csrf):
            raise bad_auth("missing or wrong CSRF token, log in again")
        return session

    def generation(self, principal: str) -> int:
        """The credential generation a session of `principal` must carry: the account's; for
        admin sessions the admin password's (directory admins: their password is the
        directory's, whose changes are not seen here, so always 0)."""
        if self.kind == "admin":
            return self.server.credentials.generation(ADMIN_PASSWORD_GENERATION) if principal == ADMIN_LOGIN else 0
        return self.server.credentials.generation(principal)

    def form_session(self, request: Any) -> Session:
        """For plain form posts (uploads): the CSRF token comes as the form field `csrf`."""
        values: list[bytes] = (getattr(request, "args", None) or {}).get(CSRF_FIELD) or [b""]
        return self.session_of(request, values[0].decode("ascii", "replace") or None)

    def invalidate_other_sessions(self, call: Call) -> int:
        """Ends every session of the caller except this one (after a password change, which
        bumped the credential generation: this session carries the new one)."""
        assert isinstance(call.session, Session)
        self.sessions.set_generation(call.session, self.generation(call.session.principal))
        return self.sessions.delete_others(call.session)

    async def authenticate(self, call: Call) -> None:
        session = self.session_of(call.request, _header(call.request, CSRF_HEADER))
        call.session = session
        call.principal = session.principal

    def _set_cookie(self, request: Any, name: bytes, value: bytes, expire: bool = False, max_age: int = 0) -> None:
        request.addCookie(
            name,
            value,
            path=self.cookie_path,
            httpOnly=True,
            secure=bool(request.isSecure()) or None,
            sameSite="strict",
            max_age=b"0" if expire else (str(max_age).encode() if max_age else None),
        )

    def _login_token(self, issued: int, nonce: str) -> str:
        key = self.server.credentials.server_secret("web-login-token")
        mac = hmac.new(key, f"{self.kind}:{issued}:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{issued}.{nonce}.{mac}"

    def _login_token_valid(self, token: str) -> bool:
        try:
            issued_text, nonce, _ = token.split(".")
            issued = int(issued_text)
        except ValueError:
            return False
        if not 0 <= time.time() - issued <= LOGIN_TOKEN_LIFETIME:
            return False
        return hmac.compare_digest(self._login_token(issued, nonce), token)

    # --- the API methods every session interface has -------------------------------------------

    @api(auth=False)
    async def LoginPrep(self, call: Call) -> str:
        """Starts a login: sets the login-token cookie and returns the token to pass to Login."""
        token = self._login_token(int(time.time()), secrets.token_urlsafe(12))
        self._set_cookie(call.request, LOGIN_COOKIE, token.encode("ascii"), max_age=LOGIN_TOKEN_LIFETIME)
        return token

    @api(auth=False)
    async def Login(self, call: Call, loginToken: str, username: str, password: str) -> str:
        """Logs in with the token of LoginPrep (also in its cookie); sets the session cookie and
        returns the CSRF token to send as the x-mailsrv-csrf header on every later call."""
        cookie = _cookie(call.request, LOGIN_COOKIE) or ""
        if not (hmac.compare_digest(cookie.encode(), loginToken.encode()) and self._login_token_valid(loginToken)):
            raise ApiError("user:badAuth", "login token missing or expired, reload the page and log in again")
        principal = await self.authenticator(self.server, call.peer, username, password)
        token, csrf, session = self.sessions.create(self.kind, principal, self.generation(principal))
        self._set_cookie(call.request, LOGIN_COOKIE, b"", expire=True)
        self._set_cookie(call.request, SESSION_COOKIE, token.encode("ascii"), max_age=int(self.sessions.max_age))
        call.session, call.principal = session, principal
        return csrf

    @api
    async def Logout(self, call: Call) -> None:
        """Ends the session and clears its cookie."""
        assert isinstance(call.session, Session)
        self.sessions.delete(call.session)
        self._set_cookie(call.request, SESSION_COOKIE, b"", expire=True)
