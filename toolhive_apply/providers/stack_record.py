"""The stack record: what a manifest declares for the stack as a whole, kept on the Docker host.

Groups and their descriptions, the secret store's settings and the secrets the manifest declares are carried by no
container, yet `export --as-manifest` must give them back, so that the exported manifest validates and plans no
changes against the stack it came from. The record is toolhive-apply's own bookkeeping (an internal resource):
planned and applied like any change, never counted. It holds names, descriptions and the store's location and
login method, never a credential or a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import docker.errors

from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.provider import EventSink
from toolhive_apply.engine.resource import DesiredResource, Kind, ObservedResource, ResourceId
from toolhive_apply.errors import ProviderError
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.providers.docker.client import CountingAPIClient, docker_errors
from toolhive_apply.providers.docker.labels import LABEL_ROLE, LABEL_STACK
from toolhive_apply.providers.docker.snapshot import StackContainers
from toolhive_apply.providers.records import create_record, observed_record, records_of
from toolhive_apply.stores.factory import DEFAULT_SETTINGS
from toolhive_apply.urls import mask_url

ROLE_STACK: Final = "stack"
# Settings that name and locate the store and say how to log in; never a credential: the settings only name the
# environment variables and files that hold one.
STORE_KEYS: Final = ("provider", "vault", "encrypted")
DEFAULT_STORE: Final = DEFAULT_SETTINGS


def record_name(stack: str) -> str:
    return f"toolhive-apply-stack.{stack}"


def store_record(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The secret store block as the record keeps it: empty sections dropped, a Vault address masked."""
    block = {key: settings[key] for key in STORE_KEYS if settings.get(key)}
    vault = dict(block.get("vault") or {})
    if vault.get("address"):
        vault["address"] = mask_url(str(vault["address"]))
    if vault:
        block["vault"] = vault
    return block


def stack_spec(manifest: Manifest, stack: str, store: Mapping[str, Any]) -> dict[str, Any]:
    """The record's spec. Its keys avoid the soft field names: a description edit is a change of the record."""
    return {
        "name": stack,
        "secret_store": store_record(store),
        "declared_groups": {group.name: {"description": group.description} for group in manifest.groups},
        "declared_secrets": {secret.key: {"description": secret.description} for secret in manifest.secrets},
    }


class StackRecordProvider:
    kind: ClassVar[Kind] = Kind.STACK

    def __init__(self, api: CountingAPIClient, stack: str, snapshot: StackContainers, store: Mapping[str, Any]) -> None:
        self.api = api
        self.stack = stack
        self.snapshot = snapshot
        self.store = store  # the settings the run really uses (from the manifest, or a saved plan)

    def desired(self, manifest: Manifest) -> list[DesiredResource]:
        """The record, when the manifest declares something no container carries: groups, secrets, or a secret
        store other than the default one. A stack of workloads alone needs none (and gets no extra container)."""
        spec = stack_spec(manifest, self.stack, self.store)
        if not spec["declared_groups"] and not spec["declared_secrets"] and spec["secret_store"] == DEFAULT_STORE:
            return []
        return [DesiredResource(ResourceId(Kind.STACK, self.stack), spec)]

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        observed = []
        for summary in records_of(self.snapshot.owned(), ROLE_STACK):
            observed.append(observed_record(Kind.STACK, self.stack, self.stack, summary))
        return observed

    def apply(self, change: Change, emit: EventSink) -> str:
        try:
            with docker_errors(self.snapshot.endpoint):
                if change.observed is not None:
                    self.api.remove_container(change.observed.handle, force=True)
                if change.action is Action.DELETE:
                    return "deleted"
                assert change.desired is not None
                owner = (self.stack, ROLE_STACK, self.stack)
                create_record(self.api, record_name(self.stack), owner, change.desired)
        except docker.errors.APIError as exc:
            raise ProviderError(str(change.id), change.action.value, str(exc.explanation or exc)) from None
        return "recorded"


def stack_records(api: CountingAPIClient, stack: str) -> list[dict[str, Any]]:
    """The record of `stack`, read without a manifest (one list call filtered by label)."""
    labels = [f"{LABEL_ROLE}={ROLE_STACK}", f"{LABEL_STACK}={stack}"]
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return found
