"""DynamicConfigStore: validated mutations, atomic rewrite, reload on change, and lookup."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mailsrv.address import Address
from mailsrv.config import ConfigError, DynamicConfig, DynamicConfigError, DynamicConfigStore, load_static
from mailsrv.config.types import AccountConfig, AliasConfig


def _store(tmp_path: Path) -> DynamicConfigStore:
    store = DynamicConfigStore(tmp_path / "dynamic.toml")
    store.add_domain("example.org")
    store.add_domain("b\u00fccher.example")
    store.add_account("alice", "alice@example.org", full_name="Alice")
    return store


def _a(text: str) -> Address:
    return Address.parse(text)


def test_built_from_static_config_and_file_created_on_first_change(tmp_path: Path) -> None:
    conf = tmp_path / "mailsrv.toml"
    conf.write_text('hostname = "mail.example.org"\ndata_dir = "data"\n')
    static = load_static(conf)
    store = DynamicConfigStore(static)
    assert store.path == tmp_path / "data" / "dynamic.toml" and not store.path.exists()
    assert store.current == DynamicConfig()
    store.add_domain("example.org")
    assert store.path.exists()
    assert DynamicConfigStore(static).current == store.current


def test_invalid_file_at_start_raises_config_error(tmp_path: Path) -> None:
    (tmp_path / "dynamic.toml").write_text("[accounts.a]\n")
    with pytest.raises(ConfigError, match=r"accounts\.a\.domain: missing"):
        DynamicConfigStore(tmp_path / "dynamic.toml")


def test_mutations_persist_and_notify(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seen: list[DynamicConfig] = []
    remove = store.add_listener(seen.append)
    store.add_address("alice", "Al\u00efce@b\u00fccher.example")
    store.set_account_quota("alice", 5000)
    store.add_alias("team@example.org", ["alice@example.org"])
    store.add_alias_member("team@example.org", "bob@b\u00fccher.example")
    store.set_alias_options("team@example.org", post_public=True)
    assert len(seen) == 5 and seen[-1] is store.current
    remove()
    store.remove_alias_member("TEAM@example.org", "BOB@xn--bcher-kva.example")
    assert len(seen) == 5

    again = DynamicConfigStore(tmp_path / "dynamic.toml")
    assert again.current == store.current
    alice = again.account_by_name("alice")
    assert alice is not None and alice.quota == 5000 and alice.full_name == "Alice"
    assert again.addresses_of("alice") == (_a("alice@example.org"), _a("Al\u00efce@xn--bcher-kva.example"))
    alias = again.alias(_a("team@example.org"))
    assert alias is not None and alias.post_public and alias.members == (_a("alice@example.org"),)

    store.remove_alias("team@example.org")
    store.remove_address("alice", "al\u00efce@b\u00fccher.example")
    store.set_account_quota("alice", None)
    store.remove_account("alice")
    store.remove_domain("b\u00fccher.example")
    assert list(store.current.domains) == ["example.org"] and store.current.accounts == {}
    assert DynamicConfigStore(tmp_path / "dynamic.toml").current == store.current


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.add_domain("example.org"), "domain example.org already exists"),
        (lambda s: s.add_domain("bad_domain.example"), "invalid domain 'bad_domain.example'"),
        (lambda s: s.remove_domain("example.org"), "domain example.org is still used by: alice"),
        (lambda s: s.remove_domain("nope.example"), "no such domain: nope.example"),
        (lambda s: s.add_account("alice", "x@example.org"), "account alice already exists"),
        (lambda s: s.add_account("bob", "ALICE@example.org"), "address ALICE@example.org is already used by account"),
        (
            lambda s: s.add_account("bob", "bob@other.example"),
            "accounts.bob.domain: domain 'other.example' is not configured in [domains]",
        ),
        (lambda s: s.add_account("bob", "not an address"), "invalid address 'not an address'"),
        (lambda s: s.add_account("a/b", "ab@example.org"), "invalid account name"),
        (lambda s: s.remove_account("bob"), "no such account: bob"),
        (lambda s: s.set_account_quota("alice", -5), "accounts.alice.quota: expected an integer >= 0, got -5"),
        (lambda s: s.remove_address("alice", "alice@example.org"), "an account keeps at least one address"),
        (lambda s: s.remove_address("alice", "other@example.org"), "account alice has no address other@example.org"),
        (lambda s: s.add_address("alice", "x@other.example"), "domain 'other.example' is not configured"),
        (lambda s: s.add_alias("Alice@example.org"), "address Alice@example.org is already used by account 'alice'"),
        (lambda s: s.remove_alias("nope@example.org"), "no such alias: nope@example.org"),
        (lambda s: s.add_alias_member("nope@example.org", "a@example.org"), "no such alias: nope@example.org"),
    ],
)
def test_refused_changes_leave_file_and_config_alone(tmp_path: Path, change: object, message: str) -> None:
    store = _store(tmp_path)
    before_bytes = store.path.read_bytes()
    before = store.current
    with pytest.raises(DynamicConfigError) as e:
        change(store)  # type: ignore[operator]
    assert message in str(e.value) and "\n" not in str(e.value)
    assert store.current is before and store.path.read_bytes() == before_bytes


def test_alias_member_errors(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_alias("team@example.org", ["alice@example.org"])
    with pytest.raises(DynamicConfigError, match="listed twice"):
        store.add_alias_member("team@example.org", "Alice@example.org")
    with pytest.raises(DynamicConfigError, match=r"members\[1\]: domain 'elsewhere\.example' is not configured"):
        store.add_alias_member("team@example.org", "bob@elsewhere.example")
    store.add_domain("other.example")
    store.add_alias_member("team@example.org", "bob@other.example")
    with pytest.raises(DynamicConfigError, match=r"still used by: team@example\.org \(member bob@other\.example\)"):
        store.remove_domain("other.example")
    with pytest.raises(DynamicConfigError, match="has no member"):
        store.remove_alias_member("team@example.org", "bob@example.org")
    with pytest.raises(DynamicConfigError, match="already exists"):
        store.add_alias("Team@example.org")
    store.remove_account("alice")
    with pytest.raises(DynamicConfigError, match=r"still used by: team@example\.org$"):
        store.remove_domain("example.org")


def test_failed_rename_keeps_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    before = store.path.read_bytes()
    current = store.current

    def crash(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk on fire"):
        store.add_domain("example.net")
    monkeypatch.undo()
    assert store.path.read_bytes() == before and store.current is current
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamic.toml"]
    assert not store.reload_if_changed()


def test_rewrite_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.add_domain("example.net")
    assert events == ["fsync-file", "rename", "fsync-dir"]


def test_reload_if_changed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seen: list[DynamicConfig] = []
    store.add_listener(seen.append)
    assert not store.reload_if_changed()  # our own write is not a change
    text = store.path.read_text() + '\n[domains."example.net"]\n'
    store.path.write_text(text)
    assert store.reload_if_changed()
    assert "example.net" in store.current.domains and len(seen) == 1
    assert not store.reload_if_changed()

    store.path.write_text(text + "[accounts.x]\n")  # invalid: logged, old config kept
    assert not store.reload_if_changed()
    assert "example.net" in store.current.domains and len(seen) == 1
    assert not store.reload_if_changed()  # not retried until the file changes again

    store.path.write_text(text.replace('[domains."example.net"]\n', ""))
    assert store.reload_if_changed() and "example.net" not in store.current.domains

    before = store.current
    store.path.unlink()  # deleted by mistake: deliveries must not start bouncing
    assert not store.reload_if_changed() and store.current is before
    store.add_domain("example.com")  # the next change writes the file again
    assert DynamicConfigStore(store.path).current == store.current


def test_lookup_normalises_and_prefers_exact(tmp_path: Path) -> None:
    store = DynamicConfigStore(tmp_path / "dynamic.toml")
    store.add_domain("example.org")
    store.add_domain("b\u00fccher.example", catchall_separator="-")
    store.add_domain("strict.example", catchall_separator=None)
    store.add_account("erin", "e\u0301rin@b\u00fccher.example")  # NFD in, NFC stored
    store.add_account("bob", "bob@example.org")
    store.add_address("bob", "bob@strict.example")
    store.add_account("news", "bob+news@example.org")
    store.add_alias("list@example.org", ["bob@example.org"])

    def name(text: str) -> str | None:
        found = store.lookup(_a(text))
        if found is None:
            return None
        return found.name if isinstance(found, AccountConfig) else f"alias {found.address}"

    assert name("\u00e9rin@b\u00fccher.example") == "erin"  # NFC
    assert name("e\u0301rin@xn--bcher-kva.example") == "erin"  # NFD, A-label
    assert name("\u00c9RIN@B\u00dcCHER.EXAMPLE") == "erin"  # case
    assert name("\u00e9rin-tag@b\u00fccher.example") == "erin"  # the domain's separator
    assert name("\u00e9rin+tag@b\u00fccher.example") is None  # not this domain's separator
    assert name("Bob+anything@example.org") == "bob"
    assert name("bob+news@example.org") == "news"  # exact wins over stripped
    assert name("BOB+NEWS@example.org") == "news"
    assert name("bob+tag@strict.example") is None  # no separator on this domain
    assert name("bob@strict.example") == "bob"
    assert name("list+x@example.org") == "alias list@example.org"
    assert name("+bob@example.org") is None
    assert name("bob@unknown.example") is None
    alias = store.lookup(_a("LIST@example.org"))
    assert isinstance(alias, AliasConfig)


def test_lookup_index_follows_changes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.lookup(_a("carol@example.org")) is None
    store.add_address("alice", "carol@example.org")
    assert store.lookup(_a("carol@example.org")) == store.account_by_name("alice")
    store.path.write_text(
        '[domains."example.org"]\n[accounts.carol]\ndomain = "example.org"\naddresses = ["carol@example.org"]\n'
    )
    assert store.reload_if_changed()
    found = store.lookup(_a("carol@example.org"))
    assert isinstance(found, AccountConfig) and found.name == "carol"
    assert store.lookup(_a("alice@example.org")) is None


def test_change_refused_when_file_was_edited_meanwhile(tmp_path: Path) -> None:
    store = _store(tmp_path)
    edited = store.path.read_text() + '[domains."hand.example"]\n'
    store.path.write_text(edited)
    with pytest.raises(DynamicConfigError, match="changed on disk and was reloaded; try again"):
        store.add_domain("example.net")
    assert "hand.example" in store.current.domains  # the hand edit is in effect, not lost
    store.add_domain("example.net")
    assert {"hand.example", "example.net"} <= set(DynamicConfigStore(store.path).current.domains)

    store.path.write_text(store.path.read_text() + "[nonsense\n")
    with pytest.raises(DynamicConfigError, match="changed on disk but is invalid"):
        store.add_domain("example.com")
    store.add_domain("example.com")  # the second attempt overwrites the broken file
    assert "example.com" in DynamicConfigStore(store.path).current.domains


def test_rewrite_keeps_file_mode(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.path.stat().st_mode & 0o777 == 0o600  # new file: private
    store.path.chmod(0o640)
    store.add_domain("example.net")
    assert store.path.stat().st_mode & 0o777 == 0o640


def test_reload_skips_a_file_caught_mid_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailsrv.config import dynamic

    store = _store(tmp_path)
    full = store.path.read_text() + '[domains."late.example"]\n'
    store.path.write_text(full[: full.index("[accounts")])  # an editor wrote the first half...
    real_read = dynamic._read_toml

    def read_then_finish(path: Path) -> object:
        data = real_read(path)
        path.write_text(full)  # ...and the rest while we were reading
        return data

    monkeypatch.setattr(dynamic, "_read_toml", read_then_finish)
    assert not store.reload_if_changed()
    assert "alice" in store.current.accounts  # the half file was not taken
    monkeypatch.undo()
    assert store.reload_if_changed()
    assert "late.example" in store.current.domains and "alice" in store.current.accounts


def test_concurrent_mutations_from_threads_lose_nothing(tmp_path: Path) -> None:
    scheduled: list[tuple[object, DynamicConfig]] = []
    store = DynamicConfigStore(tmp_path / "dynamic.toml", call_in_reactor=lambda f, c: scheduled.append((f, c)))
    seen: list[DynamicConfig] = []
    store.add_listener(seen.append)
    store.add_domain("example.org")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                store.add_account(f"u{n}-{i}", f"u{n}-{i}@example.org")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.current.accounts) == 20
    assert len(DynamicConfigStore(store.path).current.accounts) == 20
    assert seen == []  # listeners run only when the reactor runs what was scheduled
    assert len(scheduled) == 21
    for f, config in scheduled:
        f(config)  # type: ignore[operator]
    assert seen[-1] is store.current


def test_reload_skips_while_a_mutation_holds_the_lock(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.write_text(store.path.read_text() + '[domains."example.net"]\n')
    with store._lock:
        done: list[bool] = []
        t = threading.Thread(target=lambda: done.append(store.reload_if_changed()))
        t.start()
        t.join()
        assert done == [False]
    assert store.reload_if_changed() and "example.net" in store.current.domains


def test_lookup_follows_an_assigned_current(tmp_path: Path) -> None:
    store = _store(tmp_path)
    other = DynamicConfigStore(tmp_path / "other.toml")
    other.add_domain("example.org")
    other.add_account("carol", "carol@example.org")
    store.current = other.current
    found = store.lookup(_a("carol@example.org"))
    assert isinstance(found, AccountConfig) and found.name == "carol"
