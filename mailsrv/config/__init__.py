"""Typed configuration: the static `mailsrv.toml` and the dynamic `data/dynamic.toml`.

`load_static` reads the static file once at start; `DynamicConfigStore` owns the dynamic file
(validated changes, atomic rewrite, reload on change, address lookup). Every problem in a file
is a `ConfigError` whose message is one line: file, dotted key path, what was expected.
"""

from mailsrv.config.dynamic import DynamicConfigError, DynamicConfigStore, write_atomically
from mailsrv.config.load import dump_dynamic, load_dynamic, load_static, parse_dynamic
from mailsrv.config.types import (
    AccountConfig,
    AliasConfig,
    ConfigError,
    DNSConfig,
    DomainConfig,
    DynamicConfig,
    IMAPConfig,
    LDAPConfig,
    LimitsConfig,
    ListenerConfig,
    SMTPConfig,
    StaticConfig,
    TLSKeyPair,
    WebConfig,
)

__all__ = [
    "AccountConfig",
    "AliasConfig",
    "ConfigError",
    "DNSConfig",
    "DomainConfig",
    "DynamicConfig",
    "DynamicConfigError",
    "DynamicConfigStore",
    "IMAPConfig",
    "LDAPConfig",
    "LimitsConfig",
    "ListenerConfig",
    "SMTPConfig",
    "StaticConfig",
    "TLSKeyPair",
    "WebConfig",
    "dump_dynamic",
    "load_dynamic",
    "load_static",
    "parse_dynamic",
    "write_atomically",
]
