"""Random TOML documents into the loaders: the only exception allowed is ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsrv.config import ConfigError, load_dynamic, load_static

# Keys the loaders know, so that random documents get past "unknown key" often enough to
# reach the deeper checks; plus some they do not know.
_KEYS = st.sampled_from(
    [
        "hostname", "data_dir", "localserve", "tls", "listeners", "ldap", "web", "limits", "imap", "smtp", "dns",
        "cert_file", "key_file", "hostnames", "name", "protocol", "address", "port", "uris", "user_base",
        "user_filter", "timeout", "max_message_size", "default_quota", "remote_port", "idle_timeout", "webmail_path",
        "nameservers", "domains", "accounts", "aliases", "domain", "addresses", "full_name", "quota", "disabled",
        "members", "post_public", "localpart_catchall_separator", "dkim_selector", "description",
        "example.org", "alice", "a@example.org", "x", "",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.sampled_from(["imap", "implicit", "starttls", "example.org", "a@example.org", "0.0.0.0", "/", "ldap://x"]),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=20,
)
_DOCS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def _only_config_errors(tmp: Path, doc: dict[str, Any], loader: Any) -> None:
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. a list of mixed tables)
    path = tmp / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        loader(path)
    except ConfigError as e:
        assert "\n" not in str(e)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(doc=_DOCS)
def test_static_loader_raises_only_config_errors(tmp_path: Path, doc: dict[str, Any]) -> None:
    _only_config_errors(tmp_path, doc, load_static)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(doc=_DOCS)
def test_dynamic_loader_raises_only_config_errors(tmp_path: Path, doc: dict[str, Any]) -> None:
    _only_config_errors(tmp_path, doc, load_dynamic)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("[]{}=\"'.,#\n \\ax1-:@\u00e9\x00")), max_size=60))
def test_malformed_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    for loader in (load_static, load_dynamic):
        try:
            loader(path)
        except ConfigError as e:
            assert "\n" not in str(e)


_VALID_STATIC: dict[str, Any] = {
    "hostname": "mail.example.org",
    "data_dir": "data",
    "tls": [{"cert_file": "f.pem", "key_file": "f.pem", "hostnames": ["mail.example.org"]}],
    "listeners": [
        {"name": "imap", "protocol": "imap", "address": "127.0.0.1", "port": 143, "tls": "starttls"},
        {"name": "web", "protocol": "http", "address": "::", "port": 443, "tls": "implicit"},
    ],
    "limits": {"max_message_size": 2048, "default_quota": 0},
    "web": {"admin_path": "/admin/"},
    "ldap": {"uris": ["ldap://x"], "user_base": "dc=x", "user_filter": "(mail={address})", "timeout": 2.5},
    "dns": {"nameservers": ["127.0.0.1:53"], "timeout": 1},
}
_VALID_DYNAMIC: dict[str, Any] = {
    "domains": {"example.org": {"localpart_catchall_separator": "-"}, "b\u00fccher.example": {}},
    "accounts": {
        "alice": {"domain": "example.org", "addresses": ["alice@example.org", "\u00e9@b\u00fccher.example"]},
        "bob": {"domain": "example.org", "addresses": ["bob@example.org"], "quota": 5, "full_name": "Bob"},
    },
    "aliases": {"list@example.org": {"members": ["alice@example.org", "bob@example.org"], "post_public": True}},
}


def _mutate(data: st.DataObject, doc: Any) -> Any:
    """`doc` with one value somewhere replaced, removed or given an extra key."""
    if isinstance(doc, dict) and doc:
        key = data.draw(st.sampled_from(sorted(doc)))
        action = data.draw(st.sampled_from(["descend", "descend", "replace", "delete", "add"]))
        out = dict(doc)
        if action == "descend":
            out[key] = _mutate(data, doc[key])
        elif action == "replace":
            out[key] = data.draw(_VALUES)
        elif action == "delete":
            del out[key]
        else:
            out[data.draw(_KEYS)] = data.draw(_VALUES)
        return out
    if isinstance(doc, list) and doc:
        i = data.draw(st.integers(0, len(doc) - 1))
        out_list = list(doc)
        out_list[i] = _mutate(data, doc[i]) if data.draw(st.booleans()) else data.draw(_VALUES)
        return out_list
    return data.draw(_VALUES)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_mutated_valid_documents_raise_only_config_errors(tmp_path: Path, data: st.DataObject) -> None:
    (tmp_path / "f.pem").write_text("x")
    _only_config_errors(tmp_path, _mutate(data, _VALID_STATIC), load_static)
    _only_config_errors(tmp_path, _mutate(data, _VALID_DYNAMIC), load_dynamic)


def test_the_valid_fuzz_seeds_are_valid(tmp_path: Path) -> None:
    (tmp_path / "f.pem").write_text("x")
    (tmp_path / "s.toml").write_text(tomli_w.dumps(_VALID_STATIC))
    (tmp_path / "d.toml").write_text(tomli_w.dumps(_VALID_DYNAMIC))
    assert load_static(tmp_path / "s.toml").ldap is not None
    assert len(load_dynamic(tmp_path / "d.toml").accounts) == 2
