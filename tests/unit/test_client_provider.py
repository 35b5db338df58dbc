"""The client provider through the real diff and executor, without Docker: plans, repairs, ownership, refusals.

Manifests are loaded from YAML like the CLI does; client files live in a temporary home. Byte comparisons check
that everything outside our entries (foreign servers, comments, other settings) is left exactly as it was.
"""

from __future__ import annotations

import dataclasses
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

from tests.support.client_entries import read_entries
from toolhive_apply.clients import ClientSpec, FileFormat, get_client, write_entries
from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.executor import Recap, execute
from toolhive_apply.engine.plan import Action, Change, Plan, fingerprint, load_plan, save_plan
from toolhive_apply.engine.provider import Event
from toolhive_apply.engine.resource import Kind, ResourceId
from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.client.provider import ClientProvider
from toolhive_apply.providers.client.state import ClientState, ClientStateError, default_state_dir
from toolhive_apply.views.clients import clients_discovery, clients_listing

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
FIXTURE_FOR = {
    FileFormat.JSON: "plain.json",
    FileFormat.JSONC: "commented.jsonc",
    FileFormat.YAML_MAP: "goose.yaml",
    FileFormat.TOML_TABLES: "codex.toml",
}
FORMATS = ["cursor", "vscode", "goose", "codex"]  # JSON, JSONC with comments, YAML, TOML
BROKEN = {  # text, line, column of the first error
    FileFormat.JSON: ('{\n  "mcpServers": {\n    "a": {"url": "x"}\n    "b": {"url": "y"}\n  }\n}\n', 4, 5),
    FileFormat.JSONC: ('{\n  "servers": {\n    "a": {"url": "x"}\n    "b": {"url": "y"}\n  }\n}\n', 4, 5),
    FileFormat.YAML_MAP: ("extensions:\n  a: 1\n b: 2\n", 3, 2),
    FileFormat.TOML_TABLES: ('model = "x"\n[mcp_servers.a]\nurl = \n', 3, 7),
}
STACK = "unit"
MAC_KEY = b"k" * 32  # the saved-plan tests sign with a fixed key (engine/plan.py)
WORKLOADS = [
    {"name": "web", "image": "example/web:1", "transport": "streamable-http"},
    {"name": "clock", "image": "example/clock:1", "proxy_mode": "sse"},
    {"name": "pinned", "image": "example/pinned:1", "proxy_port": 31234},
]


def fixture_text(client: ClientSpec) -> str:
    template = Template((FIXTURES / FIXTURE_FOR[client.format]).read_text(encoding="utf-8"))
    return template.substitute(servers=client.servers[0])


@dataclass
class Stage:
    """One test's world: a manifest directory, a home, a state directory and the provider over them."""

    root: Path
    events: list[Event] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def provider(self) -> ClientProvider:
        return ClientProvider(STACK, state_dir=self.state_dir)

    def file(self, client: str) -> Path:
        return self.root / "configs" / client / Path(get_client(client).linux_path).name

    def manifest(
        self, clients: list[dict[str, Any]], workloads: list[dict[str, Any]] | None = None, **groups: Any
    ) -> Manifest:
        data: dict[str, Any] = {
            "apiVersion": "toolhive-apply/v1",
            "settings": {"stack": STACK, "home": str(self.home)},
            "workloads": WORKLOADS if workloads is None else workloads,
            "clients": clients,
        }
        data.update(groups)
        path = self.root / "manifest" / "stack.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return load_manifest([path])

    def declared(self, *names: str, create: bool = True) -> list[dict[str, Any]]:
        """Clients whose files live under configs/ (given relative to the manifest, as users write them)."""
        return [{"name": n, "config_path": f"../configs/{n}/{self.file(n).name}", "create": create} for n in names]

    def plan(self, manifest: Manifest, provider: ClientProvider | None = None) -> Plan:
        provider = provider or self.provider()
        desired = provider.desired(manifest)
        observed = provider.observe([d.id.name for d in desired])
        return make_plan(
            desired, observed, DiffOptions(stack=STACK, allow_empty=True, warnings=tuple(provider.warnings))
        )

    def apply(self, plan: Plan, provider: ClientProvider | None = None) -> Recap:
        return execute(plan, {Kind.CLIENT: provider or self.provider()}, 2, self.events.append)

    def converge(self, manifest: Manifest) -> Recap:
        recap = self.apply(self.plan(manifest))
        assert not recap.failed, recap.as_json()
        again = self.plan(manifest)
        assert not again.changes, again.changes
        return recap


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    (tmp_path / "home").mkdir()
    return Stage(tmp_path)


def urls() -> dict[str, str]:
    ports = assign_ports(STACK, ((w["name"], w.get("proxy_port")) for w in WORKLOADS))
    return {
        "web": f"http://127.0.0.1:{ports['web']}/mcp",
        "clock": f"http://127.0.0.1:{ports['clock']}/mcp",  # proxy_mode sse: the proxy serves /mcp as well
        "pinned": "http://127.0.0.1:31234/mcp",
    }


def url_of(entry: object) -> str:
    assert isinstance(entry, dict)
    return str(next(v for k, v in entry.items() if k in ("url", "uri", "serverUrl", "httpUrl")))


def seed(stage: Stage, client: str) -> str:
    path = stage.file(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = fixture_text(get_client(client))
    path.write_text(text, encoding="utf-8")
    return text


def change_for(plan: Plan, client: str) -> Any:
    return next(c for c in plan.changes if c.id == ResourceId(Kind.CLIENT, client))


# -- create and converge -----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", FORMATS)
def test_a_client_with_no_file_gets_one_entry_per_workload_and_the_second_plan_is_empty(
    stage: Stage, client: str
) -> None:
    manifest = stage.manifest(stage.declared(client))
    plan = stage.plan(manifest)
    assert [(str(c.id), c.action) for c in plan.changes] == [(f"client/{client}", Action.CREATE)]
    assert change_for(plan, client).desired.depends_on == {
        ResourceId(Kind.WORKLOAD, name) for name in ("web", "clock", "pinned")
    }
    assert not stage.apply(plan).failed
    entries = read_entries(get_client(client), stage.file(client))
    assert {name: url_of(entry) for name, entry in entries.items()} == urls()
    assert not stage.plan(manifest).changes


def test_cursor_reads_the_entries_as_plain_json(stage: Stage) -> None:
    stage.converge(stage.manifest(stage.declared("cursor")))
    servers = json.loads(stage.file("cursor").read_text(encoding="utf-8"))["mcpServers"]
    assert servers["web"] == {"url": urls()["web"], "type": "http"}
    assert servers["clock"] == {"url": urls()["clock"], "type": "http"}  # the client's best transport, its label


def test_the_state_file_records_only_our_entries_privately(stage: Stage) -> None:
    seed(stage, "cursor")
    stage.converge(stage.manifest(stage.declared("cursor")))
    state_file = stage.state_dir / f"{STACK}.json"
    record = json.loads(state_file.read_text(encoding="utf-8"))["clients"]["cursor"]
    assert record == {
        "path": str(stage.file("cursor")),
        "groups": ["default"],
        "entries": ["clock", "pinned", "web"],
        "home": str(stage.home),  # where the path was judged: under this home, or (named) exactly as configured
        "named": True,
    }
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(stage.state_dir.stat().st_mode) == 0o700
    assert [p.name for p in stage.state_dir.iterdir()] == [f"{STACK}.json"]  # no temp or lock file left


def test_only_the_workloads_of_the_clients_groups_are_listed(stage: Stage) -> None:
    workloads = [*WORKLOADS, {"name": "private", "image": "example/p:1", "group": "ops"}]
    manifest = stage.manifest(
        [*stage.declared("cursor"), {**stage.declared("codex")[0], "groups": ["ops"]}],
        workloads,
        groups=[{"name": "ops"}],
    )
    stage.converge(manifest)
    assert set(read_entries(get_client("cursor"), stage.file("cursor"))) == {"web", "clock", "pinned"}
    assert set(read_entries(get_client("codex"), stage.file("codex"))) == {"private"}


# -- drift -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", FORMATS)
def test_an_entry_edited_by_hand_is_an_update_and_apply_puts_it_back_byte_for_byte(stage: Stage, client: str) -> None:
    seed(stage, client)
    manifest = stage.manifest(stage.declared(client))
    stage.converge(manifest)
    path = stage.file(client)
    applied = path.read_text(encoding="utf-8")
    path.write_text(applied.replace(urls()["web"], "http://127.0.0.1:1/mcp"), encoding="utf-8")

    plan = stage.plan(manifest)
    change = change_for(plan, client)
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["entries.web." + ("uri" if client == "goose" else "url")]
    assert change.fields[0].before == "http://127.0.0.1:1/mcp"
    assert change.fields[0].after == urls()["web"]
    stage.apply(plan)
    assert path.read_text(encoding="utf-8") == applied  # foreign entries, comments, settings: all as they were
    assert not stage.plan(manifest).changes


@pytest.mark.parametrize("client", FORMATS)
def test_an_entry_deleted_by_hand_is_written_again(stage: Stage, client: str) -> None:
    manifest = stage.manifest(stage.declared(client))
    stage.converge(manifest)
    spec = get_client(client)
    write_entries(spec, stage.file(client), {}, ["clock"])  # as a user deleting it in an editor
    change = change_for(stage.plan(manifest), client)
    assert change.action is Action.UPDATE
    assert "entries.clock" in change.reason
    stage.converge(manifest)
    assert url_of(read_entries(spec, stage.file(client))["clock"]) == urls()["clock"]


def test_a_deleted_file_is_created_again(stage: Stage) -> None:
    manifest = stage.manifest(stage.declared("cursor"))
    stage.converge(manifest)
    stage.file("cursor").unlink()
    assert change_for(stage.plan(manifest), "cursor").action is Action.UPDATE
    stage.converge(manifest)
    assert set(read_entries(get_client("cursor"), stage.file("cursor"))) == {"web", "clock", "pinned"}


# -- removal -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", FORMATS)
def test_a_workload_removed_from_the_manifest_loses_its_entry_and_nothing_else(stage: Stage, client: str) -> None:
    original = seed(stage, client)
    stage.converge(stage.manifest(stage.declared(client)))
    manifest = stage.manifest(stage.declared(client), WORKLOADS[:1])
    change = change_for(stage.plan(manifest), client)
    assert change.action is Action.UPDATE
    assert {f.path.split(".")[1] for f in change.fields} == {"clock", "pinned"}
    stage.converge(manifest)
    spec = get_client(client)
    assert set(read_entries(spec, stage.file(client))) == {"github", "remote-docs", "web"}
    stage.converge(stage.manifest(stage.declared(client), []))
    assert stage.file(client).read_text(encoding="utf-8") == original


@pytest.mark.parametrize("client", FORMATS)
def test_a_client_removed_from_the_manifest_is_deleted_and_only_our_entries_go(stage: Stage, client: str) -> None:
    original = seed(stage, client)
    stage.converge(stage.manifest(stage.declared(client, "kiro")))
    plan = stage.plan(stage.manifest(stage.declared("kiro")))
    assert [(str(c.id), c.action) for c in plan.changes] == [(f"client/{client}", Action.DELETE)]
    assert not stage.apply(plan).failed
    assert stage.file(client).read_text(encoding="utf-8") == original
    assert set(ClientState(STACK, stage.state_dir).load()) == {"kiro"}
    assert not stage.plan(stage.manifest(stage.declared("kiro"))).changes


def test_when_the_last_client_goes_the_state_file_goes_too(stage: Stage) -> None:
    stage.converge(stage.manifest(stage.declared("cursor")))
    stage.converge(stage.manifest([]))
    assert read_entries(get_client("cursor"), stage.file("cursor")) == {}
    assert list(stage.state_dir.iterdir()) == []


def test_a_moved_config_path_takes_our_entries_out_of_the_old_file(stage: Stage) -> None:
    original = seed(stage, "cursor")
    stage.converge(stage.manifest(stage.declared("cursor")))
    moved = [{"name": "cursor", "config_path": str(stage.root / "elsewhere" / "mcp.json"), "create": True}]
    change = change_for(stage.plan(stage.manifest(moved)), "cursor")
    assert change.action is Action.UPDATE and "path" in change.reason
    stage.converge(stage.manifest(moved))
    assert stage.file("cursor").read_text(encoding="utf-8") == original
    assert set(read_entries(get_client("cursor"), stage.root / "elsewhere" / "mcp.json")) == {"web", "clock", "pinned"}


# -- ownership ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", FORMATS)
def test_a_hand_written_entry_under_a_workload_name_is_reported_and_left_alone(stage: Stage, client: str) -> None:
    seed(stage, client)
    manifest = stage.manifest(stage.declared(client), [*WORKLOADS, {"name": "github", "image": "example/gh:1"}])
    before = read_entries(get_client(client), stage.file(client))["github"]
    plan = stage.plan(manifest)
    expected = (
        f"client/{client}: entry 'github' in {stage.file(client)} was not written by toolhive-apply; leaving it alone"
    )
    assert expected in plan.warnings
    assert "github" not in change_for(plan, client).desired.spec["entries"]
    stage.converge(manifest)  # converges: the foreign entry is not drift
    after = read_entries(get_client(client), stage.file(client))
    assert after["github"] == before
    assert set(after) == {"github", "remote-docs", "web", "clock", "pinned"}
    assert "github" not in ClientState(STACK, stage.state_dir).load()[client].entries
    assert expected in stage.plan(manifest).warnings  # still said every time
    stage.converge(stage.manifest(stage.declared(client), []))
    assert read_entries(get_client(client), stage.file(client))["github"] == before  # and never deleted


def test_an_entry_written_by_another_stack_is_named_as_theirs(stage: Stage) -> None:
    other = ClientProvider("other", state_dir=stage.state_dir)
    manifest = stage.manifest(stage.declared("cursor"))
    recap = execute(stage.plan(manifest, other), {Kind.CLIENT: other}, 1, stage.events.append)
    assert not recap.failed
    plan = stage.plan(manifest)
    assert f"client/cursor: entry 'web' in {stage.file('cursor')} was written by stack 'other'; leaving it alone" in (
        plan.warnings
    )


def test_a_hand_written_entry_appearing_after_the_plan_is_still_left_alone(stage: Stage) -> None:
    manifest = stage.manifest(stage.declared("cursor"))
    plan = stage.plan(manifest)
    path = stage.file("cursor")
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"web": {"command": "mine"}}}\n', encoding="utf-8")
    recap = stage.apply(plan)
    assert recap.outcomes[0].note == "written (left 1 hand-written entry alone)"
    assert read_entries(get_client("cursor"), path)["web"] == {"command": "mine"}
    assert any("entry 'web'" in e.message and e.phase == "progress" for e in stage.events)


# -- refusals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", FORMATS)
def test_an_unparseable_file_cannot_be_changed_and_fails_only_its_client(stage: Stage, client: str) -> None:
    manifest = stage.manifest(stage.declared(client, "kiro"))
    stage.converge(manifest)
    spec = get_client(client)
    text, line, column = BROKEN[spec.format]
    stage.file(client).write_text(text, encoding="utf-8")
    manifest = stage.manifest(stage.declared(client, "kiro"), WORKLOADS[:2])  # kiro has work to do too

    plan = stage.plan(manifest)
    change = change_for(plan, client)
    assert change.action is Action.UPDATE
    assert change.reason.startswith(f"cannot be changed: {stage.file(client)}:{line}:{column}: ")
    recap = stage.apply(plan)
    status = {str(o.id): o for o in recap.outcomes}
    assert status[f"client/{client}"].status == "failed"
    assert f"{stage.file(client)}:{line}:{column}" in status[f"client/{client}"].note
    assert status["client/kiro"].status == "changed"
    assert stage.file(client).read_text(encoding="utf-8") == text


def test_an_unparseable_file_of_a_new_client_is_a_warning_and_a_failed_create(stage: Stage) -> None:
    path = stage.file("cursor")
    path.parent.mkdir(parents=True)
    path.write_text("{oops", encoding="utf-8")
    plan = stage.plan(stage.manifest(stage.declared("cursor")))
    assert any(w.startswith(f"client/cursor: {path}:1:2: ") for w in plan.warnings), plan.warnings
    recap = stage.apply(plan)
    assert recap.outcomes[0].status == "failed"
    assert recap.outcomes[0].note.startswith(f"create failed: {path}:1:2: ")  # the recap line names the client
    assert path.read_text(encoding="utf-8") == "{oops"
    assert ClientState(STACK, stage.state_dir).load() == {}


def test_a_client_that_is_not_installed_and_not_created_is_only_a_warning(stage: Stage) -> None:
    manifest = stage.manifest([{"name": "cursor"}, {"name": "claude-code"}])
    provider = stage.provider()
    assert provider.desired(manifest) == []
    assert provider.warnings == [
        f"client cursor is not installed (no {stage.home / '.cursor'}); set create: true to create its config file",
        f"client claude-code is not installed (no {stage.home / '.claude.json'}); "
        "set create: true to create its config file",
    ]


def test_a_config_path_under_tilde_is_under_the_home_in_use(stage: Stage) -> None:
    manifest = stage.manifest([{"name": "cursor", "config_path": "~/custom/mcp.json", "create": True}])
    [resource] = stage.provider().desired(manifest)
    assert resource.spec["path"] == str(stage.home / "custom" / "mcp.json")


def test_an_installed_client_gets_its_file_created_in_the_default_place(stage: Stage) -> None:
    (stage.home / ".cursor").mkdir()
    stage.converge(stage.manifest([{"name": "cursor"}]))
    assert set(read_entries(get_client("cursor"), stage.home / ".cursor" / "mcp.json")) == {"web", "clock", "pinned"}


class FailingWorkloads:
    kind = Kind.WORKLOAD

    def apply(self, change: Change, emit: Any) -> str:
        raise ProviderError(str(change.id), "create", "image not found")


def test_a_client_is_skipped_when_one_of_its_workloads_failed(stage: Stage) -> None:
    plan = stage.plan(stage.manifest(stage.declared("cursor")))
    workload = Change(ResourceId(Kind.WORKLOAD, "web"), Action.CREATE, "not present")
    plan = dataclasses.replace(plan, changes=(workload, *plan.changes))
    providers: dict[Kind, Any] = {Kind.WORKLOAD: FailingWorkloads(), Kind.CLIENT: stage.provider()}
    recap = execute(plan, providers, 2, stage.events.append)
    assert [(str(o.id), o.status) for o in recap.outcomes] == [("workload/web", "failed"), ("client/cursor", "skipped")]
    assert not stage.file("cursor").exists()


# -- saved plans and state -----------------------------------------------------------------------------------


def test_a_saved_plan_applies_from_its_specs_alone(stage: Stage, tmp_path: Path) -> None:
    seed(stage, "vscode")
    stage.converge(stage.manifest(stage.declared("vscode", "cursor")))
    plan = stage.plan(stage.manifest(stage.declared("vscode"), WORKLOADS[:1]))
    saved = tmp_path / "plan.json"
    save_plan(plan, saved, MAC_KEY)
    recap = stage.apply(load_plan(saved, MAC_KEY))  # a fresh provider, no manifest
    assert not recap.failed, recap.as_json()
    assert set(read_entries(get_client("vscode"), stage.file("vscode"))) == {"github", "remote-docs", "web"}
    assert read_entries(get_client("cursor"), stage.file("cursor")) == {}


def test_a_saved_plan_writes_entries_exactly_as_a_direct_apply_does(stage: Stage, tmp_path: Path) -> None:
    manifest = stage.manifest(stage.declared("cursor", "goose"))
    saved = tmp_path / "plan.json"
    save_plan(stage.plan(manifest), saved, MAC_KEY)  # JSON with sorted keys
    assert not stage.apply(load_plan(saved, MAC_KEY)).failed
    from_saved = {c: stage.file(c).read_text(encoding="utf-8") for c in ("cursor", "goose")}
    stage.converge(stage.manifest([]))
    stage.converge(manifest)
    assert {c: stage.file(c).read_text(encoding="utf-8") for c in ("cursor", "goose")} == from_saved
    assert from_saved["cursor"].index('"url"') < from_saved["cursor"].index('"type"')  # ToolHive's order


def test_observing_twice_gives_the_same_fingerprint(stage: Stage) -> None:
    manifest = stage.manifest(stage.declared("cursor", "goose"))
    stage.converge(manifest)
    first, second = stage.plan(manifest), stage.provider().observe(["cursor"])
    assert fingerprint(second) == first.observed_fingerprint


def test_a_corrupt_state_file_stops_the_plan_with_its_path(stage: Stage) -> None:
    stage.state_dir.mkdir()
    (stage.state_dir / f"{STACK}.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ClientStateError, match=str(stage.state_dir / f"{STACK}.json")):
        stage.plan(stage.manifest(stage.declared("cursor")))


def test_the_state_directory_follows_xdg_state_home(tmp_path: Path) -> None:
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "toolhive-apply" / "clients"
    assert default_state_dir({}) == Path.home() / ".local" / "state" / "toolhive-apply" / "clients"


# -- views -------------------------------------------------------------------------------------------------


@pytest.fixture
def two_stacks(stage: Stage) -> Iterator[Stage]:
    stage.converge(stage.manifest(stage.declared("cursor", "codex")))
    other = ClientProvider("other", state_dir=stage.state_dir)
    manifest = stage.manifest(
        [{**stage.declared("cursor")[0], "groups": ["ops"]}],
        [{"name": "x", "image": "e/x:1", "group": "ops"}],
        groups=[{"name": "ops"}],
    )
    assert not execute(stage.plan(manifest, other), {Kind.CLIENT: other}, 1, stage.events.append).failed
    yield stage


def test_the_clients_listing_has_toolhives_shape(two_stacks: Stage) -> None:
    assert clients_listing(two_stacks.state_dir, STACK) == [
        {"name": "cursor", "groups": ["default"]},
        {"name": "codex", "groups": ["default"]},
    ]
    assert clients_listing(two_stacks.state_dir, None) == [
        {"name": "cursor", "groups": ["default", "ops"]},
        {"name": "codex", "groups": ["default"]},
    ]
    assert clients_listing(two_stacks.state_dir, "nobody") == []


def test_discovery_lists_every_client_type_with_installed_and_registered(two_stacks: Stage) -> None:
    (two_stacks.home / ".config" / "goose").mkdir(parents=True)
    found = clients_discovery(two_stacks.home, two_stacks.state_dir, "linux")["clients"]
    assert len(found) == 26  # ToolHive's 25 and qoder-cli
    by_type = {c["client_type"]: c for c in found}
    assert by_type["goose"] == {"client_type": "goose", "installed": True, "registered": False}
    assert by_type["cursor"] == {"client_type": "cursor", "installed": False, "registered": True}
    assert by_type["codex"]["registered"] and not by_type["vscode"]["registered"]
    assert found[0]["client_type"] == "roo-code"
