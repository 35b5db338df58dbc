"""Symbolic and hard links around client files, with real links in a temporary home: where a read or a write may
land is decided on the fully resolved path, and no link is followed that was not judged (final component, any
directory on the way, dangling, planted at `.lock`, `.bak` or a temp name, swapped in after the check).

Every refusal leaves the place outside home exactly as it was: same names, same bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.client_entries import read_entries
from tests.unit.test_client_provider import STACK, WORKLOADS, Stage
from toolhive_apply.clients import (
    ClientConfigError,
    ClientFileLinkError,
    Confinement,
    backup_path,
    build_entry,
    get_client,
    lock_path,
    observe,
    write_entries,
)
from toolhive_apply.clients import files as files_module
from toolhive_apply.clients import handles as handles_module
from toolhive_apply.clients.confinement import Place
from toolhive_apply.engine.resource import Kind
from toolhive_apply.providers.client.provider import ClientProvider
from toolhive_apply.providers.client.state import ClientRecord, ClientState, ClientStateError

CURSOR = get_client("cursor")
ORIGINAL = '{\n  "mcpServers": {\n    "theirs": {"url": "http://h:1/mcp"}\n  }\n}\n'
VICTIM = b"# a file outside home that must never change\n"


def ours() -> dict[str, object]:
    return build_entry(CURSOR, "ours", "streamable-http", "http://127.0.0.1:1/mcp")


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every name under `directory` with its bytes (or its link target): what "untouched" compares."""
    found: dict[str, bytes | str] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = "<dir>"
    return found


class World:
    """A home with `.cursor/`, and a directory outside it holding a victim file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.outside = root / "outside"
        self.home.mkdir()
        self.outside.mkdir()
        self.victim = self.outside / "victim.json"
        self.victim.write_bytes(VICTIM)
        self.config = self.home / ".cursor" / "mcp.json"

    @property
    def confinement(self) -> Confinement:
        return Confinement.of(self.home)

    def seed(self) -> Path:
        self.config.parent.mkdir(exist_ok=True)
        self.config.write_text(ORIGINAL, encoding="utf-8")
        return self.config


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def refused(world: World, *, create: bool = True) -> ClientFileLinkError:
    """Both the read and the write are refused with a link error; the error of the write is returned."""
    with pytest.raises(ClientFileLinkError):
        observe(CURSOR, world.config, world.confinement)
    with pytest.raises(ClientFileLinkError) as caught:
        write_entries(CURSOR, world.config, {"ours": ours()}, create=create, confinement=world.confinement)
    return caught.value


# -- out of home ----------------------------------------------------------------------------------------


def test_a_config_file_linked_out_of_home_is_neither_read_nor_written(world: World) -> None:
    world.config.parent.mkdir()
    world.config.symlink_to(world.victim)
    before = snapshot(world.outside)

    error = refused(world)

    assert str(error).startswith(f"{world.config}: is a symbolic link to {world.victim}, outside the home directory")
    assert error.hint is not None and f"config_path to {world.victim}" in error.hint
    assert snapshot(world.outside) == before
    assert world.config.is_symlink()
    assert sorted(p.name for p in world.config.parent.iterdir()) == ["mcp.json"], "no lock, temp or backup left"


def test_a_directory_on_the_way_linked_out_of_home_is_refused_too(world: World) -> None:
    target = world.outside / "cursor-dir"
    target.mkdir()
    (target / "mcp.json").write_text(ORIGINAL, encoding="utf-8")
    world.config.parent.symlink_to(target)  # ~/.cursor -> /outside/cursor-dir
    before = snapshot(world.outside)

    error = refused(world)

    assert f"leads through a symbolic link to {target / 'mcp.json'}, outside the home directory" in str(error)
    assert snapshot(world.outside) == before


def test_a_link_higher_up_is_judged_like_any_other_component(world: World) -> None:
    deep = world.home / ".config" / "Code" / "User" / "mcp.json"
    (world.home / ".config").symlink_to(world.outside)  # ~/.config -> /outside: creating Code/User there is refused
    before = snapshot(world.outside)
    vscode = get_client("vscode")
    with pytest.raises(ClientFileLinkError, match="outside the home directory"):
        write_entries(vscode, deep, {"ours": ours()}, create=True, confinement=world.confinement)
    assert snapshot(world.outside) == before


def test_a_link_out_of_home_is_allowed_when_config_path_names_the_file_it_leads_to(world: World) -> None:
    real = world.outside / "cursor.json"
    real.write_text(ORIGINAL, encoding="utf-8")
    world.config.parent.mkdir()
    world.config.symlink_to(real)

    named_link = Confinement.of(world.home, world.config)  # config_path names the link: still refused
    with pytest.raises(ClientFileLinkError, match="outside the home directory"):
        write_entries(CURSOR, world.config, {"ours": ours()}, confinement=named_link)

    named_file = Confinement.of(world.home, real)  # config_path names the real file: the user chose it
    assert write_entries(CURSOR, real, {"ours": ours()}, confinement=named_file)
    assert read_entries(CURSOR, real, named_file)["ours"] == ours()
    assert world.config.is_symlink()


def test_a_link_that_stays_inside_home_is_followed_and_stays_a_link(world: World) -> None:
    dotfiles = world.home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "cursor.json"
    real.write_text(ORIGINAL, encoding="utf-8")
    world.config.parent.mkdir()
    world.config.symlink_to(Path("..") / "dotfiles" / "cursor.json")

    assert write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)

    assert world.config.is_symlink() and world.config.resolve() == real
    assert read_entries(CURSOR, real, world.confinement)["ours"] == ours()
    assert backup_path(real).read_text(encoding="utf-8") == ORIGINAL
    assert not lock_path(world.config).exists() and not lock_path(real).exists()


def test_without_a_home_only_the_literal_path_is_used(world: World) -> None:
    world.seed()
    link = world.root / "link.json"
    link.symlink_to(world.config)
    with pytest.raises(ClientFileLinkError, match="no home directory was given"):
        write_entries(CURSOR, link, {"ours": ours()})  # no confinement given: exact path, through no link
    assert write_entries(CURSOR, world.config, {"ours": ours()})


# -- dangling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inside", [True, False], ids=["into-home", "out-of-home"])
def test_nothing_is_created_through_a_dangling_link_to_the_file(world: World, inside: bool) -> None:
    missing = (world.home / "dotfiles" if inside else world.outside) / "missing.json"
    world.config.parent.mkdir()
    world.config.symlink_to(missing)
    before = snapshot(world.root)

    error = refused(world)

    assert f"is a symbolic link to {missing}, which does not exist" in str(error)
    assert "dangling" in str(error)
    assert snapshot(world.root) == before
    assert not missing.exists()


def test_nothing_is_created_through_a_dangling_directory_link(world: World) -> None:
    world.config.parent.symlink_to(world.home / "not-yet")  # ~/.cursor -> ~/not-yet, which does not exist
    before = snapshot(world.root)
    error = refused(world)
    assert f"{world.config.parent} is a symbolic link to" in str(error)
    assert snapshot(world.root) == before
    assert not (world.home / "not-yet").exists()


def test_a_link_loop_is_a_clear_refusal(world: World) -> None:
    world.config.parent.mkdir()
    world.config.symlink_to(world.config.parent / "other.json")
    (world.config.parent / "other.json").symlink_to(world.config)
    assert "loops back on itself" in str(refused(world))


# -- planted links beside the file -----------------------------------------------------------------------


def test_a_link_planted_at_the_backup_name_is_replaced_not_written_through(world: World) -> None:
    world.seed()
    backup_path(world.config).symlink_to(world.victim)
    before = snapshot(world.outside)

    assert write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)

    assert snapshot(world.outside) == before
    backup = backup_path(world.config)
    assert not backup.is_symlink() and backup.read_text(encoding="utf-8") == ORIGINAL


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_link_planted_at_the_lock_name_is_refused(world: World, dangling: bool) -> None:
    world.seed()
    target = world.outside / "created-by-lock" if dangling else world.victim
    lock_path(world.config).symlink_to(target)
    before = snapshot(world.outside)

    with pytest.raises(ClientFileLinkError) as caught:
        write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)

    assert str(caught.value).startswith(f"{lock_path(world.config)}: is a symbolic link")
    assert snapshot(world.outside) == before
    assert world.config.read_text(encoding="utf-8") == ORIGINAL


def test_a_link_planted_at_a_temp_name_is_skipped_not_followed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.seed()
    names = iter(["planted", "planted", "fresh", "fresh2", "fresh3", "fresh4"])
    monkeypatch.setattr(handles_module.secrets, "token_hex", lambda _: next(names))
    for name in (".mcp.json.planted.tmp", ".mcp.json.bak.planted.tmp"):
        (world.config.parent / name).symlink_to(world.victim)
    before = snapshot(world.outside)

    assert write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)

    assert snapshot(world.outside) == before
    assert read_entries(CURSOR, world.config)["ours"] == ours()
    assert (world.config.parent / ".mcp.json.planted.tmp").is_symlink(), "a name in use is left to its owner"


def test_a_fifo_where_the_file_should_be_is_refused_without_blocking(world: World) -> None:
    world.config.parent.mkdir()
    os.mkfifo(world.config)
    with pytest.raises(ClientConfigError, match="is not a regular file"):
        observe(CURSOR, world.config, world.confinement)


# -- links swapped in after the check (check-then-open races) --------------------------------------------


def swap_after_locate(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    real_locate = files_module.locate

    def locate_then_swap(path: Path, confinement: Confinement) -> Place:
        place = real_locate(path, confinement)
        swap()
        return place

    monkeypatch.setattr(files_module, "locate", locate_then_swap)


def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.seed()
    elsewhere = world.outside / "cursor-dir"
    elsewhere.mkdir()
    (elsewhere / "mcp.json").write_text(ORIGINAL, encoding="utf-8")
    before = snapshot(world.outside)

    def swap() -> None:
        world.config.parent.rename(world.home / ".cursor-moved")
        world.config.parent.symlink_to(elsewhere)

    swap_after_locate(monkeypatch, swap)
    with pytest.raises(ClientFileLinkError, match="is a symbolic link"):
        write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)
    assert snapshot(world.outside) == before


def test_a_file_swapped_for_a_link_after_the_check_is_not_followed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.seed()
    before = snapshot(world.outside)

    def swap() -> None:
        world.config.unlink()
        world.config.symlink_to(world.victim)

    swap_after_locate(monkeypatch, swap)
    with pytest.raises(ClientFileLinkError, match="is a symbolic link"):
        write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)
    assert snapshot(world.outside) == before


# -- hard links -----------------------------------------------------------------------------------------


def test_a_hard_linked_config_is_replaced_and_its_other_name_keeps_the_old_bytes(world: World) -> None:
    other = world.outside / "hard.json"
    other.write_text(ORIGINAL, encoding="utf-8")
    world.config.parent.mkdir()
    os.link(other, world.config)
    assert world.config.stat().st_nlink == 2

    assert write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)

    assert other.read_text(encoding="utf-8") == ORIGINAL, "the file was replaced by rename, not written in place"
    assert world.config.stat().st_nlink == 1 and other.stat().st_nlink == 1
    assert read_entries(CURSOR, world.config)["ours"] == ours()


def test_a_hard_link_at_the_backup_name_is_replaced_too(world: World) -> None:
    world.seed()
    os.link(world.victim, backup_path(world.config))
    assert write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)
    assert world.victim.read_bytes() == VICTIM
    assert backup_path(world.config).read_text(encoding="utf-8") == ORIGINAL


def test_special_permission_bits_are_not_carried_onto_new_content(world: World) -> None:
    world.seed()
    world.config.chmod(0o4640)
    write_entries(CURSOR, world.config, {"ours": ours()}, confinement=world.confinement)
    assert stat.S_IMODE(world.config.stat().st_mode) == 0o640


# -- the state file -------------------------------------------------------------------------------------


def state_in(world: World) -> ClientState:
    return ClientState(STACK, world.home / ".local" / "state" / "toolhive-apply" / "clients")


def record(world: World) -> ClientRecord:
    return ClientRecord.of(world.config, ["default"], ["ours"], world.confinement)


@pytest.mark.parametrize("planted", ["state", "lock"])
def test_a_link_planted_at_the_state_file_or_its_lock_is_refused(world: World, planted: str) -> None:
    state = state_in(world)
    state.set("cursor", record(world))
    name = state.path.name + (".lock" if planted == "lock" else "")
    (state.directory / name).unlink(missing_ok=True)
    (state.directory / name).symlink_to(world.victim)
    before = snapshot(world.outside)

    with pytest.raises(ClientStateError, match="is a symbolic link"):
        state.set("cursor", None)
    if planted == "state":
        with pytest.raises(ClientStateError, match="is a symbolic link"):
            state.load()
    assert snapshot(world.outside) == before


def test_a_state_directory_level_linked_elsewhere_is_refused(world: World) -> None:
    base = world.home / ".local" / "state"
    base.mkdir(parents=True)
    (base / "toolhive-apply").symlink_to(world.outside)
    before = snapshot(world.outside)
    with pytest.raises(ClientStateError, match="is a symbolic link"):
        state_in(world).set("cursor", record(world))
    assert snapshot(world.outside) == before


def test_a_state_base_the_user_linked_elsewhere_is_followed(world: World) -> None:
    (world.home / ".local").mkdir()
    (world.home / ".local" / "state").symlink_to(world.outside)  # XDG_STATE_HOME is the user's to place
    state = state_in(world)
    state.set("cursor", record(world))
    assert state.load() == {"cursor": record(world)}
    assert (world.outside / "toolhive-apply" / "clients" / f"{STACK}.json").is_file()


# -- through the provider ------------------------------------------------------------------------------


def test_the_provider_refuses_a_client_linked_out_of_home_and_applies_the_others(tmp_path: Path) -> None:
    stage = Stage(tmp_path)
    stage.home.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (stage.home / ".cursor").symlink_to(outside)  # the default location of Cursor's file leads out of home
    (stage.home / ".config" / "Code" / "User").mkdir(parents=True)
    manifest = stage.manifest([{"name": "cursor", "create": True}, {"name": "vscode", "create": True}])

    plan = stage.plan(manifest)
    warning = f"client/cursor: {stage.home / '.cursor' / 'mcp.json'}: leads through a symbolic link to"
    assert any(w.startswith(warning) and "outside the home directory" in w for w in plan.warnings), plan.warnings
    recap = stage.apply(plan)

    failed = [(str(o.id), o.note) for o in recap.outcomes if o.status == "failed"]
    assert [address for address, _ in failed] == ["client/cursor"], recap.as_json()
    assert "outside the home directory" in failed[0][1] and "config_path to" in failed[0][1]
    assert {str(o.id): o.status for o in recap.outcomes}["client/vscode"] == "changed"
    assert list(outside.iterdir()) == []
    vscode = stage.home / ".config" / "Code" / "User" / "mcp.json"
    assert set(read_entries(get_client("vscode"), vscode)) == {w["name"] for w in WORKLOADS}
    assert "cursor" not in ClientState(STACK, stage.state_dir).load()


def test_a_saved_plan_carries_where_the_file_may_be(tmp_path: Path) -> None:
    stage = Stage(tmp_path)
    stage.home.mkdir()
    real = tmp_path / "outside" / "cursor.json"
    manifest = stage.manifest([{"name": "cursor", "config_path": str(real), "create": True}])
    plan = stage.plan(manifest)
    source = next(c for c in plan.changes if c.id.kind is Kind.CLIENT).desired.spec["source"]
    assert source == {"home": str(stage.home), "named": True}
    fresh = ClientProvider(STACK, home=tmp_path / "elsewhere", state_dir=stage.state_dir)  # another $HOME
    assert not stage.apply(plan, fresh).failed
    assert set(read_entries(CURSOR, real)) == {w["name"] for w in WORKLOADS}
