"""Endpoint security on the host side: manifest -> checks -> spec -> THV_PROXY_CONFIG / RunConfig / plan fields."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.engine.diff import field_changes
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.auth_files import cedar_checker
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.workload.create_args import container_labels, proxy_config
from toolhive_apply.providers.workload.endpoint import CLIENT_SECRET_ENV, proxy_secret_refs
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.views.workloads import runconfig

ISSUER = "https://idp.example/realms/team"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwks(kid: str = "k1") -> dict[str, Any]:
    return {"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": _b64(2**2047 + 12345), "e": "AQAB"}]}


def write_manifest(tmp_path: Path, *workloads: dict[str, Any], settings: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "stack.yaml"
    document = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "s", **(settings or {})},
        "secrets": [{"key": "idp-secret", "present": True}],
        "workloads": [
            {"image": "toolhive-apply-test/echo:latest", "transport": "streamable-http", **w} for w in workloads
        ],
    }
    path.write_text(json.dumps(document, indent=1))
    return path


def problems(tmp_path: Path, *workloads: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifest([write_manifest(tmp_path, *workloads, **kw)])
    return "\n".join(caught.value.lines())


def spec_of(tmp_path: Path, *workloads: dict[str, Any], **kw: Any) -> dict[str, Any]:
    manifest = load_manifest([write_manifest(tmp_path, *workloads, **kw)])
    return workload_spec(manifest.workloads[0], manifest, 20000, "sha256:1")


def oidc(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    (tmp_path / "jwks.json").write_text(json.dumps(public_jwks()))
    return {"issuer": ISSUER, "audience": "mcp-team", "jwks_url": "./jwks.json", **extra}


POLICY = (
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo") '
    'when { principal.claim_role == "admin" };'
)


def test_a_workload_without_endpoint_settings_keeps_its_spec_and_hash(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"name": "w"})
    assert "endpoint" not in spec and "endpoint_documents" not in spec
    config = proxy_config(spec)
    assert "auth" not in config and "strict_protocol_validation" not in config


def test_a_non_loopback_host_needs_auth_or_an_explicit_anonymous(tmp_path: Path) -> None:
    text = problems(tmp_path, {"name": "w", "host": "0.0.0.0"})
    assert "workloads[0].host: '0.0.0.0' is not a loopback address" in text and "auth: anonymous" in text
    assert spec_of(tmp_path, {"name": "w", "host": "0.0.0.0", "auth": "anonymous"})["endpoint"] == {"auth": "anonymous"}
    assert spec_of(tmp_path, {"name": "w", "host": "0.0.0.0"}, settings={"auth": "anonymous"})
    assert spec_of(tmp_path, {"name": "w", "host": "127.0.0.2"})  # loopback, judged as an address
    assert spec_of(tmp_path, {"name": "w", "host": "10.0.0.1", "oidc": oidc(tmp_path)})
    text = problems(tmp_path, {"name": "w", "host": "::", "auth": "anonymous", "oidc": oidc(tmp_path)})
    assert "workloads[0].auth: auth: anonymous and oidc contradict" in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("issuer", "idp.example", "issuer must be an absolute https URL"),
        ("issuer", "http://idp.example", "issuer must use https"),
        ("jwks_url", "http://idp.example/jwks", "jwks_url must use https"),
        ("jwks_url", "./missing.json", "cannot read"),
        ("introspection_url", "ftp://idp.example/x", "introspection_url must be an absolute https URL"),
        ("client_secret", "nope", "unknown secret 'nope'"),
    ],
)
def test_oidc_fields_are_judged_at_the_field(tmp_path: Path, field: str, value: str, message: str) -> None:
    block = oidc(tmp_path, client_id="proxy", **{field: value})
    text = problems(tmp_path, {"name": "w", "oidc": block})
    line = next(line for line in text.splitlines() if f"workloads[0].oidc.{field}:" in line)
    assert message in line
    assert line.startswith(f"{tmp_path / 'stack.yaml'}:")


def test_loopback_http_urls_are_allowed(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        {
            "name": "w",
            "oidc": {"issuer": "http://127.0.0.1:8000", "audience": "a", "jwks_url": "http://localhost:8000/jwks"},
        },
    )
    assert spec["endpoint"]["oidc"]["jwks_url"] == "http://localhost:8000/jwks"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "is not JSON, so not a JWKS"),
        ({"keys": []}, "non-empty 'keys' list"),
        ({"kty": "RSA"}, "non-empty 'keys' list"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private or symmetric key material (k)"),
        ({"keys": [{**public_jwks()["keys"][0], "d": "x"}]}, "private or symmetric key material (d)"),
        ({"keys": [{"kty": "RSA", "e": "AQAB"}]}, "RSA key without n"),
    ],
)
def test_a_jwks_file_that_is_not_a_public_jwks_is_an_error(tmp_path: Path, document: object, message: str) -> None:
    (tmp_path / "bad.json").write_text(document if isinstance(document, str) else json.dumps(document))
    block = {"issuer": ISSUER, "audience": "a", "jwks_url": "bad.json"}
    text = problems(tmp_path, {"name": "w", "oidc": block})
    assert "workloads[0].oidc.jwks_url:" in text and message in text


def test_settings_auth_is_the_default_and_a_workloads_own_block_wins(tmp_path: Path) -> None:
    stack = {"auth": {"oidc": oidc(tmp_path)}}
    own = {"issuer": "https://other.example", "audience": "own", "jwks_url": "https://other.example/jwks"}
    manifest = load_manifest(
        [
            write_manifest(
                tmp_path, {"name": "a"}, {"name": "b", "oidc": own}, {"name": "c", "auth": "anonymous"}, settings=stack
            )
        ]
    )
    specs = {w.name: workload_spec(w, manifest, 20000, None) for w in manifest.workloads}
    assert specs["a"]["endpoint"]["oidc"]["audience"] == "mcp-team"
    assert specs["a"]["endpoint"]["oidc"]["jwks_file"] == "./jwks.json"
    assert specs["b"]["endpoint"]["oidc"]["audience"] == "own"
    assert specs["c"]["endpoint"] == {"auth": "anonymous"}


def test_the_proxy_config_carries_the_agreed_auth_block_and_no_secret(tmp_path: Path) -> None:
    block = oidc(tmp_path, client_id="proxy", client_secret="idp-secret", scopes=["mcp"])
    spec = spec_of(
        tmp_path,
        {"name": "w", "oidc": block, "strict_protocol_validation": True, "allowed_origins": ["https://app.example"]},
    )
    config = proxy_config(spec)
    assert config["strict_protocol_validation"] is True
    assert config["allowed_origins"] == ["https://app.example"]
    auth = config["auth"]
    assert auth["mode"] == "oidc" and auth["authz"] is None
    assert auth["oidc"] == {
        "issuer": ISSUER,
        "audience": "mcp-team",
        "jwks": public_jwks(),
        "jwks_url": None,
        "introspection_url": None,
        "client_id": "proxy",
        "client_secret_env": CLIENT_SECRET_ENV,
        "scopes": ["mcp"],
        "resource_url": "http://127.0.0.1:20000/mcp",
    }
    assert [ref.document() for ref in proxy_secret_refs(spec)] == [
        {"name": "idp-secret", "target": CLIENT_SECRET_ENV, "as": "env"}
    ]
    assert spec["secrets"] == []  # the server container never gets the proxy's client secret


def test_authz_inline_and_from_files_yaml_and_json(tmp_path: Path) -> None:
    inline = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": [POLICY], "entities_json": "[]"}}
    (tmp_path / "authz.yaml").write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n")
    (tmp_path / "authz.json").write_text(json.dumps(inline))
    configs = []
    for value in (inline, "authz.yaml", "./authz.json"):
        spec = spec_of(tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": value})
        configs.append(proxy_config(spec)["auth"]["authz"])
        assert spec["endpoint"]["authz"]["policies"] == [POLICY]
    assert configs[0] == configs[1] == configs[2] == inline


def test_authz_problems_are_positioned_in_the_authz_file(tmp_path: Path) -> None:
    (tmp_path / "authz.yaml").write_text("version: '2'\ntype: cedarv1\ncedar:\n  policies: []\n")
    text = problems(tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"})
    assert f"{tmp_path / 'authz.yaml'}:1:1: version: must be '1.0'" in text
    assert f"{tmp_path / 'authz.yaml'}:4:3: cedar.policies: must be a non-empty list" in text
    assert "(authz_config of workload 'w')" in text
    (tmp_path / "authz.yaml").write_text(
        "version: '1.0'\ntype: cedarv1\n"
        "cedar: {policies: ['permit(principal, action, resource);'], entities_json: '{'}\n"
    )
    assert "cedar.entities_json: must be JSON text of a list" in problems(
        tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"}
    )
    text = problems(tmp_path, {"name": "w", "authz_config": "authz.yaml"})
    assert "workloads[0].authz_config: authz_config needs oidc" in text


def test_a_policy_the_proxy_cannot_evaluate_is_refused_at_the_policy(tmp_path: Path) -> None:
    if cedar_checker() is None:
        pytest.skip("the proxy's Cedar subset (unsupported()) is not on this branch yet")
    odd = (
        'permit(principal, action, resource) when { principal.claim_x like "*a*" && context has foo '
        '&& ip("1.2.3.4").isLoopback() };'
    )
    (tmp_path / "authz.yaml").write_text(
        f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n    - '{odd}'\n"
    )
    text = problems(tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"})
    assert f"{tmp_path / 'authz.yaml'}:6:7: cedar.policies[1]: the proxy cannot evaluate this policy" in text
    assert "policies[0]" not in text


def test_plans_show_auth_and_policy_changes_attribute_by_attribute(tmp_path: Path) -> None:
    (tmp_path / "authz.yaml").write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n")
    workload = {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"}
    before = spec_of(tmp_path, workload)
    (tmp_path / "jwks.json").write_text(json.dumps(public_jwks("k2")))
    (tmp_path / "authz.yaml").write_text(
        f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY.replace('admin', 'ops')}'\n"
    )
    after = load_manifest([tmp_path / "stack.yaml"])
    after_spec = workload_spec(after.workloads[0], after, 20000, "sha256:1")
    paths = {change.path for change in field_changes(before, after_spec, WORKLOAD_FIELDS)}
    assert paths == {
        "endpoint.oidc.jwks_sha256",
        "endpoint.oidc.jwks_kids",
        "endpoint.authz.sha256",
        "endpoint.authz.policies",
    }
    assert WORKLOAD_FIELDS.hash(before) != WORKLOAD_FIELDS.hash(after_spec)


def test_the_runconfig_carries_toolhives_endpoint_fields(tmp_path: Path) -> None:
    (tmp_path / "authz.yaml").write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n")
    block = {
        "issuer": ISSUER,
        "audience": "mcp-team",
        "jwks_url": "https://idp.example/jwks",
        "client_id": "proxy",
        "scopes": ["mcp"],
    }
    spec = spec_of(
        tmp_path,
        {
            "name": "w",
            "oidc": block,
            "authz_config": "authz.yaml",
            "allowed_origins": ["https://app.example"],
            "strict_protocol_validation": True,
            "session_ttl": "1h30m",
        },
    )
    config = runconfig(spec, "s")
    assert config["oidc_config"] == {
        "issuer": ISSUER,
        "audience": "mcp-team",
        "jwksurl": "https://idp.example/jwks",
        "clientID": "proxy",
        "scopes": ["mcp"],
        "resourceURL": "http://127.0.0.1:20000/mcp",
    }
    assert config["authz_config"] == {
        "version": "1.0",
        "type": "cedarv1",
        "cedar": {"policies": [POLICY], "entities_json": "[]"},
    }
    assert config["allowed_origins"] == ["https://app.example"]
    assert config["strict_protocol_validation"] is True
    assert config["session_ttl"] == "1h30m"


def test_the_client_secret_is_a_name_in_labels_and_config_and_reaches_only_the_proxy(tmp_path: Path) -> None:
    from toolhive_apply.providers.workload.create_args import proxy_labels

    spec = spec_of(tmp_path, {"name": "w", "oidc": oidc(tmp_path, client_id="c", client_secret="idp-secret")})
    assert '"client_secret":"idp-secret"' in proxy_labels(spec, "s")["toolhive-apply.endpoint"]  # the name only
    assert "idp-secret" not in json.dumps(container_labels(spec, "s"))  # the server knows nothing of it
    assert proxy_config(spec)["auth"]["oidc"]["client_secret_env"] == CLIENT_SECRET_ENV


@pytest.mark.parametrize("origin", ["app.example", "https://app.example/path", "javascript:alert(1)", "https://"])
def test_allowed_origins_must_be_origins(tmp_path: Path, origin: str) -> None:
    text = problems(tmp_path, {"name": "w", "allowed_origins": ["http://localhost:*", origin]})
    assert "workloads[0].allowed_origins[1]:" in text and "is not an origin" in text


def _summary(name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "State": "running", "Labels": labels, **extra}


def test_the_endpoint_lives_on_the_proxy_so_a_change_of_it_replaces_the_proxy_alone(tmp_path: Path) -> None:
    from toolhive_apply.engine.diff import DiffOptions, make_plan
    from toolhive_apply.engine.resource import DesiredResource, Kind, ResourceId
    from toolhive_apply.providers.docker.labels import LABEL_ENDPOINT
    from toolhive_apply.providers.workload.create_args import proxy_labels
    from toolhive_apply.providers.workload.endpoint import endpoint_only
    from toolhive_apply.providers.workload.observe import observe_units

    (tmp_path / "authz.yaml").write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n")
    spec = spec_of(tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"})
    server_labels = container_labels(spec, "s")
    assert "endpoint" not in json.loads(server_labels["toolhive-apply.spec"])  # the server's record has no endpoint
    assert "jwks" not in server_labels["toolhive-apply.spec"]
    proxy = proxy_labels(spec, "s")
    assert json.loads(proxy[LABEL_ENDPOINT]) == spec["endpoint"]
    net = {"NetworkSettings": {"Networks": {"toolhive-apply.s": {}}}}
    units = [_summary("w", server_labels, **net), _summary("w-proxy", proxy)]
    (observed,) = observe_units("s", units, [], ["w"]).values()
    assert observed.status == "running" and observed.spec_hash == WORKLOAD_FIELDS.hash(
        spec
    )  # in sync: the unit's whole hash
    rid = ResourceId(Kind.WORKLOAD, "w")
    assert make_plan([DesiredResource(rid, spec)], [observed], DiffOptions(stack="s")).changes == ()

    (tmp_path / "authz.yaml").write_text(
        f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY.replace('admin', 'ops')}'\n"
    )
    changed = spec_of(tmp_path, {"name": "w", "oidc": oidc(tmp_path), "authz_config": "authz.yaml"})
    (change,) = make_plan(
        [DesiredResource(rid, changed, explain={"endpoint.authz.policies": "authz.yaml"})],
        [observed],
        DiffOptions(stack="s"),
    ).changes
    assert change.action.value == "replace"
    assert endpoint_only(f.path for f in change.fields)
    assert "endpoint.authz.policies" in change.reason and "(from authz.yaml)" in change.reason
    image_changed = {**changed, "image_id": "sha256:2"}
    assert not endpoint_only(f.path for f in field_changes(observed.spec, image_changed, WORKLOAD_FIELDS))

    # a proxy made before this version carries no endpoint label: the server's record is judged alone
    bare = {k: v for k, v in proxy.items() if k != LABEL_ENDPOINT}
    (old,) = observe_units("s", [_summary("w", server_labels, **net), _summary("w-proxy", bare)], [], ["w"]).values()
    assert old.spec_hash != WORKLOAD_FIELDS.hash(spec) and "endpoint" not in (old.spec or {})


def test_clients_not_known_to_follow_the_oauth_flow_are_warned_about(tmp_path: Path) -> None:
    from toolhive_apply.clients.table import client_table

    assert {c.name for c in client_table() if c.endpoint_auth == "oauth"} >= {"claude-code", "vscode", "gemini-cli"}
    path = write_manifest(tmp_path, {"name": "w", "oidc": oidc(tmp_path)})
    document = json.loads(path.read_text())
    document["clients"] = [{"name": "claude-code"}, {"name": "cline"}]
    path.write_text(json.dumps(document))
    warnings = [str(w) for w in load_manifest([path]).warnings]
    assert len(warnings) == 1 and "clients[1].name: warning: cline sees 'w'" in warnings[0]


def test_export_as_manifest_gives_the_endpoint_back_and_plans_the_same_spec(tmp_path: Path) -> None:
    from toolhive_apply.providers.workload.endpoint import endpoint_manifest

    (tmp_path / "authz.yaml").write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - '{POLICY}'\n")
    workload = {
        "name": "w",
        "oidc": oidc(tmp_path, client_id="c", client_secret="idp-secret", scopes=["mcp"]),
        "authz_config": "authz.yaml",
        "allowed_origins": ["https://app.example"],
        "strict_protocol_validation": False,
    }
    before = spec_of(tmp_path, workload)
    exported = endpoint_manifest(before)
    assert exported["authz_config"]["cedar"]["policies"] == [POLICY]  # inline: the file is not needed any more
    after = spec_of(tmp_path, {"name": "w", **exported})
    assert WORKLOAD_FIELDS.hash(after) == WORKLOAD_FIELDS.hash(before)
    assert endpoint_manifest(spec_of(tmp_path, {"name": "w", "host": "0.0.0.0", "auth": "anonymous"})) == {
        "auth": "anonymous"
    }
