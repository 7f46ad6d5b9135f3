"""Typed configuration: the static `mailsrv.toml` and the dynamic `data/dynamic.toml`."""

from mailsrv.config.dynamic import DynamicConfigError, DynamicConfigStore
from mailsrv.config.load import dump_dynamic, load_dynamic, load_static
from mailsrv.config.types import ConfigError, DynamicConfig, StaticConfig

__all__ = [
    "ConfigError",
    "DynamicConfig",
    "DynamicConfigError",
    "DynamicConfigStore",
    "StaticConfig",
    "dump_dynamic",
    "load_dynamic",
    "load_static",
]
