"""What a plan says to a reviewer, on data: internal records never counted, values never shown, plain English."""

from __future__ import annotations

import pytest

from toolhive_apply.engine.diff import DiffOptions, make_plan
from toolhive_apply.engine.executor import Outcome, Recap
from toolhive_apply.engine.plan import Action, plan_to_json
from toolhive_apply.engine.render import counted, render_plan, render_recap
from toolhive_apply.engine.resource import HASH_VERSION, DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import UsageError

STACK = "s"
HMAC = ResourceId(Kind.SECRET, f"toolhive-apply.hmac.{STACK}")
RECORD = ResourceId(Kind.STACK, STACK)


def secret(key: str, digest: str = "hmac-sha256:aaaa") -> DesiredResource:
    return DesiredResource(ResourceId(Kind.SECRET, key), {"key": key, "description": "", "digest": digest})


def hmac_key() -> DesiredResource:
    return DesiredResource(HMAC, {"key": HMAC.name, "description": "key", "digest": "new"})


def record(groups: dict[str, object] | None = None) -> DesiredResource:
    spec = {"name": STACK, "secret_store": {"provider": "encrypted"}, "declared_groups": groups or {}}
    return DesiredResource(RECORD, {**spec, "declared_secrets": {}})


def seen(item: DesiredResource, **spec: object) -> ObservedResource:
    body = {**item.spec, **spec}
    probe = DesiredResource(item.id, body)
    return ObservedResource(item.id, "h", True, STACK, probe.hash, HASH_VERSION, "present", body)


def workload(**spec: object) -> DesiredResource:
    body = {
        "name": "web",
        "image": "img:1",
        "transport": "stdio",
        "env_vars": {"GREETING": "hello there", "LOG_LEVEL": "debug"},
        "secrets": [{"name": "token", "target": "TOKEN", "as": "env"}],
        "secret_digests": {"token": "hmac-sha256:bbbb"},
        "volumes": [],
        "prune": True,
        **spec,
    }
    return DesiredResource(ResourceId(Kind.WORKLOAD, "web"), body)


def test_the_digest_key_and_the_stack_record_are_created_but_never_counted() -> None:
    plan = make_plan([record(), secret("token"), hmac_key()], [], DiffOptions(stack=STACK))
    assert {c.id for c in plan.changes} == {RECORD, HMAC, ResourceId(Kind.SECRET, "token")}
    assert plan.summary()["create"] == 1
    text = render_plan(plan)
    assert "Plan: 1 to create," in text and "toolhive-apply.hmac" not in text and "+ stack 's'" not in text
    verbose = render_plan(plan, verbose=True)
    assert f"# {HMAC} will be created (not present) [internal: toolhive-apply's own record]" in verbose
    assert "Plan: 1 to create," in verbose
    data = plan_to_json(plan)
    assert data["summary"]["create"] == 1
    assert {c["address"] for c in data["changes"] if c.get("internal")} == {str(RECORD), str(HMAC)}
    assert all("internal" not in c for c in data["changes"] if c["address"] == "secret/token")


def test_internal_resources_are_never_listed_in_sync_or_kept() -> None:
    in_sync = make_plan([record(), hmac_key()], [seen(record()), seen(hmac_key())], DiffOptions(stack=STACK))
    assert in_sync.changes == () and in_sync.in_sync == () and in_sync.kept == ()
    assert "(0 resources in sync)" in render_plan(in_sync)
    # a manifest that no longer declares secrets: the key stays (secrets are kept), and is not listed as kept
    left = make_plan([record()], [seen(record()), seen(hmac_key())], DiffOptions(stack=STACK))
    assert left.changes == () and left.kept == ()
    assert "Kept" not in render_plan(left)


def test_a_manifest_declaring_nothing_is_still_refused_although_the_record_is_always_wanted() -> None:
    with pytest.raises(UsageError, match="declares nothing, which would delete all 1 resource of stack"):
        make_plan([record()], [seen(record()), seen(workload())], DiffOptions(stack=STACK))


def test_an_internal_change_alone_is_a_change_and_says_what_it_is() -> None:
    plan = make_plan(
        [record({"research": {"description": "new"}})],
        [seen(record({"research": {"description": "old"}}))],
        DiffOptions(stack=STACK),
    )
    assert plan.has_changes and plan.summary()["replace"] == 0
    text = render_plan(plan)
    assert "No changes. Stack 's' matches the manifest (0 resources in sync)." in text
    assert "toolhive-apply will update its own records of the stack (internal; -v shows them)." in text
    verbose = render_plan(plan, verbose=True)
    assert '~ declared_groups.research.description: "old" -> "new"' in verbose


def test_destroy_of_a_stack_that_owns_nothing_says_so() -> None:
    nothing = make_plan([], [], DiffOptions(stack=STACK, destroy=True))
    assert render_plan(nothing, destroy=True) == "Nothing to destroy: stack 's' owns no resources.\n"
    only_record = make_plan([], [seen(record())], DiffOptions(stack=STACK, destroy=True))
    assert [c.action for c in only_record.changes] == [Action.DELETE]  # the record goes too, uncounted
    assert render_plan(only_record, destroy=True).startswith("Nothing to destroy: stack 's' owns no resources.")
    kept = make_plan([], [seen(secret("token"))], DiffOptions(stack=STACK, destroy=True))
    text = render_plan(kept, destroy=True)
    assert "Kept: secret/token (destroy deletes secrets only with --prune-secrets)" in text
    assert "Nothing else to destroy in stack 's'." in text
    assert "No changes" not in text


def test_a_create_shows_env_var_names_secret_references_and_no_value() -> None:
    plan = make_plan([workload()], [], DiffOptions(stack=STACK))
    text = render_plan(plan)
    assert "      + env_vars: GREETING, LOG_LEVEL" in text
    assert '      + secrets: [{"as": "env", "name": "token", "target": "TOKEN"}]' in text
    assert "hello there" not in text and "debug" not in text and "hmac-sha256" not in text
    assert "volumes" not in text  # an empty list says nothing
    verbose = render_plan(plan, verbose=True)
    assert '      + env_vars.GREETING: "hello there"' in verbose
    assert "      + secret_digests.token: (sensitive value)" in verbose  # a + line in a + block
    assert "~ secret_digests" not in verbose


def test_a_secret_whose_value_changed_renders_no_digest() -> None:
    old, new = secret("token", "hmac-sha256:1111"), secret("token", "hmac-sha256:2222")
    plan = make_plan([new], [seen(old)], DiffOptions(stack=STACK))
    (change,) = plan.changes
    assert change.action is Action.UPDATE and change.reason == "value changed"
    text = render_plan(plan, verbose=True)
    assert "      ~ digest: (sensitive value will change)" in text
    assert "hmac-sha256" not in text and "hmac-sha256" not in str(plan_to_json(plan)["changes"][0]["fields"])


def test_counts_read_as_english() -> None:
    assert counted(1, "workload") == "1 workload" and counted(2, "workload") == "2 workloads"
    assert (
        counted(1, "registry", "registries") == "1 registry" and counted(0, "registry", "registries") == "0 registries"
    )
    plan = make_plan([secret("a")], [seen(secret("a"))], DiffOptions(stack=STACK))
    assert "(1 resource in sync)" in render_plan(plan)


def test_the_recap_counts_and_lists_internal_records_only_when_they_failed() -> None:
    recap = Recap(
        [
            Outcome(RECORD, "changed", "recorded"),
            Outcome(HMAC, "changed", "written"),
            Outcome(ResourceId(Kind.SECRET, "token"), "changed", "written"),
        ]
    )
    text = render_recap(recap)
    assert "ok=0 changed=1 failed=0" in text and "recorded" not in text
    assert recap.as_json()["changed"] == 1
    broken = Recap([Outcome(RECORD, "failed", "create failed: no room")])
    assert "failed   stack/s: create failed: no room" in render_recap(broken) and broken.failed
