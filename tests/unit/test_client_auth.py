"""`client_auth` (#16): a static bearer token from a secret, written into the client files that take headers.

Through the client provider and the real diff, executor and saved plans, without Docker, as test_client_provider.py
does. The token is a canary: it must be in the client file (that is the point) and nowhere else: not in a spec, the
plan text or JSON, a saved plan, the client state file or an export.
"""

from __future__ import annotations

import json
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.client_entries import read_entries
from toolhive_apply.clients import get_client
from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.executor import Recap, execute
from toolhive_apply.engine.plan import Action, Plan, load_plan, plan_to_json, save_plan
from toolhive_apply.engine.render import render_plan
from toolhive_apply.engine.resource import Kind
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import manifest_ports
from toolhive_apply.providers.client.bearer import REDACTED_HEADER
from toolhive_apply.providers.client.provider import ClientProvider
from toolhive_apply.providers.client.state import ClientStateError
from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.stack_key import KEY_ENV
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.stores.environment import PREFIX, EnvironmentStore
from toolhive_apply.views.client_auth import with_client_auth
from toolhive_apply.views.manifest import LiveStack, as_manifest

STACK = "unit"
SECRET = "api-token"
CANARY = "canary-7f3a9c1e-token-value"
ROTATED = "rotated-52be80d4-token-value"
MAC_KEY = b"k" * 32
WORKLOADS: list[dict[str, Any]] = [
    {"name": "web", "image": "example/web:1", "client_auth": {"bearer_secret": SECRET}},
    {"name": "plain", "image": "example/plain:1"},
]
HEADERS_KEY = {"cursor": "headers", "vscode": "headers", "claude-code": "headers", "codex": "http_headers"}


@dataclass
class Stage:
    root: Path
    environ: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.environ.update({KEY_ENV: "x" * 48, PREFIX + SECRET: CANARY})

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def provider(self) -> ClientProvider:
        """A fresh resolver per run, as each CLI run has: a rotated value is read again."""
        resolver = SecretResolver(lambda: EnvironmentStore(self.environ), STACK)
        return ClientProvider(STACK, state_dir=self.state_dir, secrets=resolver)

    def file(self, client: str) -> Path:
        return self.root / "configs" / client / Path(get_client(client).linux_path).name

    def manifest(
        self,
        clients: list[str],
        workloads: list[dict[str, Any]] | None = None,
        client_groups: tuple[str, ...] = ("default",),
        **extra: Any,
    ) -> Manifest:
        data: dict[str, Any] = {
            "apiVersion": "toolhive-apply/v1",
            "settings": {"stack": STACK, "home": str(self.root / "home")},
            "secrets": [{"key": SECRET, "present": True}],
            "workloads": WORKLOADS if workloads is None else workloads,
            "clients": [
                {
                    "name": c,
                    "config_path": f"../configs/{c}/{self.file(c).name}",
                    "create": True,
                    "groups": ["b"] if c == "goose" else list(client_groups),
                }
                for c in clients
            ],
            **extra,
        }
        path = self.root / "manifest" / "stack.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return load_manifest([path])

    def plan(self, manifest: Manifest) -> Plan:
        provider = self.provider()
        desired = provider.desired(manifest)
        observed = provider.observe([d.id.name for d in desired])
        self.specs = json.dumps([d.spec for d in desired]) + json.dumps([asdict(o) for o in observed], default=str)
        return make_plan(
            desired, observed, DiffOptions(stack=STACK, allow_empty=True, warnings=tuple(provider.warnings))
        )

    def apply(self, plan: Plan) -> Recap:
        recap = execute(plan, {Kind.CLIENT: self.provider()}, 2, lambda _: None)
        assert not recap.failed, recap.as_json()
        return recap

    def converge(self, manifest: Manifest) -> None:
        self.apply(self.plan(manifest))
        again = self.plan(manifest)
        assert not again.changes, again.changes


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    (tmp_path / "home").mkdir()
    return Stage(tmp_path)


def entry(stage: Stage, client: str, name: str) -> dict[str, Any]:
    found = read_entries(get_client(client), stage.file(client))[name]
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("client", sorted(HEADERS_KEY))
def test_a_client_that_takes_headers_gets_the_token_under_its_own_key(stage: Stage, client: str) -> None:
    stage.converge(stage.manifest([client]))
    assert entry(stage, client, "web")[HEADERS_KEY[client]] == {"Authorization": f"Bearer {CANARY}"}
    assert HEADERS_KEY[client] not in entry(stage, client, "plain")  # only the endpoint that asks for it
    assert stat.S_IMODE(stage.file(client).stat().st_mode) == 0o600
    text = stage.file(client).read_text(encoding="utf-8")
    assert text.index("url") < text.index(HEADERS_KEY[client])  # ToolHive's keys first, the headers after them
    if get_client(client).types is not None:
        assert text.index('"type"', text.index('"web"')) < text.index('"headers"')


def test_a_file_that_was_world_readable_is_made_private_when_it_gets_a_token(stage: Stage) -> None:
    path = stage.file("cursor")
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {}}\n', encoding="utf-8")
    path.chmod(0o644)
    stage.converge(stage.manifest(["cursor"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backup = path.with_name(path.name + ".bak")
    assert not backup.exists() or stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_a_client_without_headers_is_warned_about_by_name_and_gets_no_token(stage: Stage) -> None:
    plan = stage.plan(stage.manifest(["zed", "cursor"]))
    warnings = [w for w in plan.warnings if "bearer token" in w]
    assert len(warnings) == 1 and "client zed" in warnings[0] and "web" in warnings[0]
    stage.apply(plan)
    assert "headers" not in entry(stage, "zed", "web")
    assert CANARY not in stage.file("zed").read_text(encoding="utf-8")
    assert CANARY in stage.file("cursor").read_text(encoding="utf-8")


def test_the_token_is_nowhere_but_in_the_client_file(stage: Stage, tmp_path: Path) -> None:
    manifest = stage.manifest(["cursor", "codex"])
    first = stage.plan(manifest)
    outputs = [stage.specs, render_plan(first, verbose=True), json.dumps(plan_to_json(first))]
    saved = tmp_path / "plan.json"
    save_plan(first, saved, MAC_KEY)
    outputs.append(saved.read_text(encoding="utf-8"))
    stage.apply(load_plan(saved, MAC_KEY))  # a saved plan holds no value, so the value is read at apply time
    assert CANARY in stage.file("cursor").read_text(encoding="utf-8")
    again = stage.plan(manifest)  # observing the file that now holds it
    assert not again.changes
    outputs += [stage.specs, render_plan(again, verbose=True), json.dumps(plan_to_json(again))]
    state = (stage.state_dir / f"{STACK}.json").read_text(encoding="utf-8")
    outputs.append(state)
    records = ClientProvider(STACK, state_dir=stage.state_dir).state.load()
    exported = as_manifest(LiveStack(STACK, [], clients=records, home=stage.root / "home"))
    outputs.append(json.dumps(exported))
    for text in outputs:
        assert CANARY not in text
    assert json.loads(state)["clients"]["cursor"]["bearer"] == {"web": SECRET}  # the name, no value, no digest
    assert f"<secret {SECRET}>" in render_plan(first, verbose=True)


def test_rotating_the_secret_updates_exactly_the_files_holding_it(stage: Stage) -> None:
    # goose lists only group b, whose workload sends no token
    manifest = stage.manifest(
        ["cursor", "vscode", "goose"], [*WORKLOADS[:1], {**WORKLOADS[1], "group": "b"}], groups=[{"name": "b"}]
    )
    stage.converge(manifest)
    stage.environ[PREFIX + SECRET] = ROTATED
    plan = stage.plan(manifest)
    assert {str(c.id) for c in plan.changes} == {"client/cursor", "client/vscode"}
    assert all(c.action is Action.UPDATE for c in plan.changes)
    text = render_plan(plan)
    assert SECRET in text and ROTATED not in text and CANARY not in text
    assert ROTATED not in json.dumps(plan_to_json(plan)) and ROTATED not in stage.specs
    stage.apply(plan)
    assert entry(stage, "vscode", "web")["headers"] == {"Authorization": f"Bearer {ROTATED}"}
    assert not stage.plan(manifest).changes


def test_a_token_edited_by_hand_is_put_back_and_the_edit_is_not_shown(stage: Stage) -> None:
    manifest = stage.manifest(["cursor"])
    stage.converge(manifest)
    path = stage.file("cursor")
    typed = "typed-by-hand-0c4e1b9a"
    path.write_text(path.read_text(encoding="utf-8").replace(CANARY, typed), encoding="utf-8")
    plan = stage.plan(manifest)
    assert [str(c.id) for c in plan.changes] == ["client/cursor"]
    assert typed not in render_plan(plan, verbose=True) and typed not in stage.specs
    stage.apply(plan)
    assert entry(stage, "cursor", "web")["headers"] == {"Authorization": f"Bearer {CANARY}"}


def test_client_auth_removed_takes_the_header_out(stage: Stage) -> None:
    stage.converge(stage.manifest(["cursor"]))
    stage.converge(stage.manifest(["cursor"], [{"name": "web", "image": "example/web:1"}, WORKLOADS[1]]))
    assert "headers" not in entry(stage, "cursor", "web")
    assert CANARY not in stage.file("cursor").read_text(encoding="utf-8")


def test_a_header_typed_by_hand_into_an_entry_of_ours_is_redacted_when_observed(stage: Stage) -> None:
    manifest = stage.manifest(["cursor"])
    stage.converge(manifest)
    path = stage.file("cursor")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["mcpServers"]["plain"]["headers"] = {"X-Api-Key": "hand-typed-9d2f"}
    path.write_text(json.dumps(data), encoding="utf-8")
    observed = stage.provider().observe(["cursor"])[0]
    assert observed.spec is not None
    assert observed.spec["entries"]["plain"]["headers"] == {"X-Api-Key": REDACTED_HEADER}


def test_the_gateway_entry_carries_the_groups_token(stage: Stage) -> None:
    workloads = [{"name": "a", "image": "example/a:1", "group": "team"}]
    groups = [{"name": "team", "vmcp": {"port": 4483, "client_auth": {"bearer_secret": SECRET}}}]
    stage.converge(stage.manifest(["claude-code"], workloads, ("team",), groups=groups))
    assert entry(stage, "claude-code", "team")["headers"] == {"Authorization": f"Bearer {CANARY}"}


def test_an_undeclared_secret_is_an_error_at_its_field(stage: Stage) -> None:
    with pytest.raises(ManifestError, match=r"workloads\[0\]\.client_auth\.bearer_secret: unknown secret 'nope'"):
        stage.manifest(["cursor"], [{"name": "web", "image": "x/y:1", "client_auth": {"bearer_secret": "nope"}}])


def test_the_export_names_the_secret_on_the_workload(stage: Stage) -> None:
    stage.converge(stage.manifest(["cursor"]))
    records = ClientProvider(STACK, state_dir=stage.state_dir).state.load()
    manifest = stage.manifest(["cursor"])
    ports = manifest_ports(manifest)
    specs = [workload_spec(w, manifest, ports[w.name], None) for w in manifest.workloads]
    exported = as_manifest(LiveStack(STACK, specs, clients=records, home=stage.root / "home"))
    by_name = {w["name"]: w for w in exported["workloads"]}
    assert by_name["web"]["client_auth"] == {"bearer_secret": SECRET} and "client_auth" not in by_name["plain"]
    assert {"key": SECRET, "present": True} in exported["secrets"]
    assert CANARY not in json.dumps(exported)


def test_a_damaged_bearer_record_stops_the_plan_naming_the_state_file(stage: Stage) -> None:
    manifest = stage.manifest(["cursor"])
    stage.converge(manifest)
    state = stage.state_dir / f"{STACK}.json"
    data = json.loads(state.read_text(encoding="utf-8"))
    data["clients"]["cursor"]["bearer"] = ["web"]
    state.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ClientStateError, match=str(state)):
        stage.plan(manifest)


def test_the_export_puts_a_gateways_secret_on_its_groups_vmcp_block() -> None:
    groups = [{"name": "team", "vmcp": {"port": 4483}}, {"name": "other"}]
    _, out = with_client_auth([], groups, {"team": SECRET})
    assert out == [{"name": "team", "vmcp": {"port": 4483, "client_auth": {"bearer_secret": SECRET}}}, groups[1]]
