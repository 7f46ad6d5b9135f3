"""The one normalised form of a login name, for keys that must not be dodged by spelling.

An address is keyed as `Address.key()` (NFC, case-folded localpart, IDNA A-label domain:
soft hyphens, full-width letters and a trailing dot in the domain all give the same key);
any other name (an account name) NFC-normalised and case-folded. Used by the rate limiter
(failures per account) and by SCRAM's fake salts for unknown accounts.
"""

from __future__ import annotations

import unicodedata

from mailsrv.address import Address, AddressError


def login_key(login: str) -> str:
    name = unicodedata.normalize("NFC", login.strip())
    if "@" in name:
        try:
            return Address.parse(name).key()
        except AddressError:
            pass
    return unicodedata.normalize("NFC", name.casefold())
