"""The client resource kind: one per declared MCP client, holding an entry for every workload of its groups.

Only entries this stack wrote are compared, written or removed; which ones those are is recorded in the stack's
client state file (client_state.py), because the config files cannot carry markers. A same-named entry the user
wrote by hand is reported and left alone, and a file that does not parse is never written over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from toolhive_apply.clients import (
    ClientConfigError,
    ClientSpec,
    Confinement,
    Entry,
    UnknownClientError,
    build_entry,
    config_path,
    get_client,
    is_installed,
    observe,
    write_entries,
)
from toolhive_apply.clients.confinement import normal
from toolhive_apply.clients.table import InstalledRule
from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.provider import Event, EventSink
from toolhive_apply.engine.resource import (
    HASH_VERSION,
    DesiredResource,
    Kind,
    ObservedResource,
    ResourceId,
    Spec,
    Status,
)
from toolhive_apply.errors import ManifestError, ProviderError, ToolhiveApplyError
from toolhive_apply.manifest.client_auth import endpoint_client_auth
from toolhive_apply.manifest.model import Client, Manifest
from toolhive_apply.manifest.ports import manifest_ports
from toolhive_apply.manifest.vmcp_checks import vmcp_only
from toolhive_apply.providers.client.bearer import no_headers_warning, redact_observed, reveal, with_placeholder
from toolhive_apply.providers.client.state import ClientRecord, ClientState, ClientStateError, load_all
from toolhive_apply.providers.fields import CLIENT_FIELDS
from toolhive_apply.providers.gateway import gateway_groups, gateway_spec
from toolhive_apply.providers.secret import SecretResolver
from toolhive_apply.providers.workload.spec import workload_spec, workload_url
from toolhive_apply.providers.workload.spec_model import WorkloadSpec
from toolhive_apply.redact import SecretValue


@dataclass(frozen=True, slots=True)
class Target:
    """Where a declared client's file is, where it may lead (its home, or the exact config_path), and whether
    ToolHive would consider the client installed."""

    client: ClientSpec
    path: Path
    installed: bool
    confinement: Confinement

    @property
    def source(self) -> dict[str, object]:
        """The confinement as the desired spec carries it (a soft field), so a saved plan applies under it too."""
        return {"home": str(self.confinement.home), "named": self.confinement.named is not None}

    @property
    def marker(self) -> Path:
        """What must exist for the client to count as installed: its directory, or the file itself."""
        return self.path if self.client.installed is InstalledRule.FILE else self.path.parent


def workload_entries(
    client: ClientSpec,
    groups: Sequence[str],
    manifest: Manifest,
    specs: Mapping[str, Spec] | None = None,
    per_workload: bool = False,
) -> dict[str, Entry]:
    """The entry of every workload in `groups`, keyed by workload name, pointing at its proxy.

    `specs` are the workloads' desired specs (the workload provider's, carrying the ports it assigned once): the
    entry is read off them. Without them (a client provider used on its own) each spec is made as the workload
    provider makes it (same stack name, same port order), so the URL is known without asking Docker. The entry uses
    the client's best transport, whatever the workload's own: the proxy serves streamable HTTP and SSE side by side.
    """
    if specs is None:
        ports = manifest_ports(manifest)
    entries: dict[str, Entry] = {}
    behind_gateway = gateway_groups(manifest, groups)
    for workload in manifest.workloads:
        if workload.group not in groups or not (workload.image or workload.url or workload.registry):
            continue
        if vmcp_only(manifest, workload) or (workload.group in behind_gateway and not per_workload):
            continue  # the group's gateway entry stands for it
        recorded = specs.get(workload.name) if specs is not None else None
        if recorded is not None:
            spec = WorkloadSpec.from_document(recorded)
        else:
            spec = workload_spec(workload, manifest, ports[workload.name], None)
        transport = client.best_transport  # the proxy serves every workload over both HTTP transports
        entries[workload.name] = build_entry(client, workload.name, transport, workload_url(spec, transport))
    for group in behind_gateway.values():  # a gateway serves streamable HTTP only
        gateway = gateway_spec(group, manifest, {})
        entries[gateway.name] = build_entry(client, gateway.name, gateway.transport, workload_url(gateway))
    return entries


def in_client_order(client: ClientSpec, entry: Mapping[str, object]) -> Entry:
    """`entry` with its keys in the order `build_entry` writes them (ToolHive's order).

    A saved plan stores specs with sorted keys; without this, applying it would write `type` before `url`.
    """
    order = [client.name_key, client.url_keys.stdio, client.url_keys.sse, client.url_keys.streamable_http]
    order += [client.type_key, *(key for key, _ in client.defaults)]
    rank = {key: index for index, key in reversed(list(enumerate(order))) if key is not None}
    return {key: entry[key] for key in sorted(entry, key=lambda key: (rank.get(key, len(order)), key))}


def manifest_dir(manifest: Manifest, declared: Client | None = None) -> Path:
    """Where relative paths of `declared` (or of the settings) are anchored: the file that declares them."""
    if declared is not None and declared.origin is not None:
        return declared.origin.file.resolve().parent
    return manifest.files[0].resolve().parent if manifest.files else Path.cwd()


def _conflict_note(address: str, name: str, path: Path, owners: Sequence[str]) -> str:
    who = f"was written by stack {', '.join(map(repr, owners))}" if owners else "was not written by toolhive-apply"
    return f"{address}: entry {name!r} in {path} {who}; leaving it alone"


class ClientProvider:
    """Client config files, one resource per declared client type (`client/cursor`).

    `warnings` holds what the last `desired()` found worth telling but not worth failing for (a client that is not
    installed, a hand-written entry under one of our names, a file we cannot read); the engine adds them to the plan.
    """

    kind: ClassVar[Kind] = Kind.CLIENT

    def __init__(
        self,
        stack: str,
        home: Path | None = None,
        state_dir: Path | None = None,
        secrets: SecretResolver | None = None,
    ) -> None:
        self.stack = stack
        self.home = home
        self.state = ClientState(stack, state_dir)
        self.secrets = secrets
        """Values and keyed digests of the secrets `client_auth` names (the run's one resolver)."""
        self.warnings: list[str] = []

    # ------------------------------------------------------------------------------------------ desired
    def home_for(self, manifest: Manifest) -> Path:
        """`settings.home` (relative to the manifest), else the provider's home, else $HOME."""
        if manifest.settings.home:
            home = Path(manifest.settings.home).expanduser()
            return normal(home if home.is_absolute() else manifest_dir(manifest) / home)
        return self.default_home()

    def default_home(self) -> Path:
        return normal(self.home if self.home is not None else Path.home())

    def target(self, declared: Client, manifest: Manifest) -> Target:
        """The file of `declared`: its `config_path` (`~` is the home in use, relative is the manifest's directory).

        The file may land (once links are followed) under the home in use, or exactly at the config_path given.
        """
        client = get_client(declared.name)
        home = self.home_for(manifest)
        override = declared.config_path
        if override and not override.startswith("~/"):
            expanded = Path(override).expanduser()
            override = str(expanded if expanded.is_absolute() else manifest_dir(manifest, declared) / expanded)
        try:
            path = config_path(client, home, override=override)
        except ToolhiveApplyError as exc:
            raise ManifestError.single(declared.origin, f"clients[{declared.name}].config_path", exc.message) from None
        # One spelling per file (`..` folded as written) so state records compare equal. No link is resolved here:
        # the reader and writer resolve at the moment they open, and judge that against the confinement.
        path = normal(path)
        confinement = Confinement.of(home, path if declared.config_path else None)
        return Target(client, path, is_installed(client, home, override=str(path)), confinement)

    def desired(self, manifest: Manifest, workloads: Sequence[DesiredResource] | None = None) -> list[DesiredResource]:
        """`workloads`: the workload provider's desired resources, whose specs the entries are read from."""
        specs = {d.id.name: d.spec for d in workloads} if workloads is not None else None
        self.warnings = []
        records = self.state.load()
        result = []
        for declared in manifest.clients:
            target = self.target(declared, manifest)
            rid = ResourceId(Kind.CLIENT, declared.name)
            if not target.installed and not declared.create:
                self.warnings.append(
                    f"client {declared.name} is not installed (no {target.marker}); "
                    "set create: true to create its config file"
                )
                continue
            entries = workload_entries(target.client, declared.groups, manifest, specs, declared.per_workload)
            for name in self._foreign(rid, target, records.get(declared.name), entries):
                del entries[name]
            spec = {
                "name": declared.name,
                "path": str(target.path),
                "groups": list(declared.groups),
                "entries": entries,
                "source": target.source,
            }
            bearer = self._bearer(target.client, manifest, entries)
            if bearer:
                spec |= self._tokens(bearer)
            needs = frozenset(ResourceId(Kind.WORKLOAD, name) for name in entries)
            needs |= frozenset(ResourceId(Kind.SECRET, secret) for secret in bearer.values())
            result.append(DesiredResource(rid, spec, declared.origin, needs))
        return result

    def _bearer(self, client: ClientSpec, manifest: Manifest, entries: dict[str, Entry]) -> dict[str, str]:
        """Entry -> secret for the entries whose endpoint declares `client_auth`; their placeholders are put in
        `entries`. A client without a headers key gets a warning naming it instead (no header, no token)."""
        auth = endpoint_client_auth(manifest)
        bearer = {name: auth[name].bearer_secret for name in sorted(entries) if name in auth}
        if bearer and client.headers_key is None:
            self.warnings.append(no_headers_warning(client, list(bearer)))
            return {}
        for name, secret in bearer.items():
            entries[name] = with_placeholder(client, entries[name], secret)
        return bearer

    def _tokens(self, bearer: Mapping[str, str]) -> dict[str, Any]:
        """The spec fields of the tokens: which secret each entry carries (soft) and the secrets' keyed digests."""
        if self.secrets is None:
            raise ToolhiveApplyError("client_auth names a secret, but no secret store is configured")
        resolver = self.secrets
        digests = {secret: resolver.digest(resolver.value(secret)) for secret in sorted(set(bearer.values()))}
        return {"bearer": dict(bearer), "secret_digests": digests}

    def _foreign(
        self, rid: ResourceId, target: Target, record: ClientRecord | None, wanted: Mapping[str, Entry]
    ) -> list[str]:
        """Wanted names the file already holds but this stack did not write: reported, and left out of the spec.

        Leaving them out of the desired spec (rather than only out of the write) keeps the plan converged: the entry
        is not ours to compare, so it must not show as drift on every run.
        """
        ours = set(record.entries) if record is not None and record.path == target.path else set()
        try:
            present = observe(target.client, target.path, target.confinement).entries
        except ClientConfigError as exc:
            if not ours:  # for a client we manage, observe reports it as "cannot be changed"
                self.warnings.append(f"{rid}: {exc.message}; the file is left untouched until it is fixed")
            return []
        foreign = sorted(name for name in wanted if name in present and name not in ours)
        for name in foreign:
            self.warnings.append(_conflict_note(str(rid), name, target.path, self._owners(rid.name, target.path, name)))
        return foreign

    def _owners(self, client: str, path: Path, entry: str) -> list[str]:
        """Other stacks that recorded `entry` in this file: named in the warning so the user knows where it is from."""
        owners = []
        for stack, records in load_all(self.state.directory).items():
            record = records.get(client)
            if stack != self.stack and record is not None and record.path == path and entry in record.entries:
                owners.append(stack)
        return owners

    # ------------------------------------------------------------------------------------------ observe
    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        """Every client in this stack's state file, with one read and parse of its file.

        A declared client not in the state file is not observed at all, so the diff plans a CREATE; its file is
        ToolHive's and the user's, not a conflict. Only entries this stack wrote appear in the observed spec.
        """
        return [self._observe_one(name, record) for name, record in sorted(self.state.load().items())]

    def _observe_one(self, name: str, record: ClientRecord) -> ObservedResource:
        rid = ResourceId(Kind.CLIENT, name)
        handle = str(record.path)
        try:
            found = observe(get_client(name), record.path, record.confinement(self.default_home()))
        except (ClientConfigError, UnknownClientError) as exc:
            problem = {"error": exc.message}
            return ObservedResource(rid, handle, True, self.stack, None, HASH_VERSION, Status.INVALID, None, problem)
        entries = {entry: found.entries[entry] for entry in record.entries if entry in found.entries}
        # the file holds tokens in clear: nothing leaves this method before they are placeholders and digests
        bearer = record.bearer_secrets
        digest = self.secrets.digest if self.secrets is not None and bearer else None
        entries, digests = redact_observed(get_client(name), entries, bearer, digest)
        spec: dict[str, Any] = {"name": name, "path": handle, "entries": entries}
        if digests:
            spec |= {"bearer": {e: s for e, s in bearer.items() if e in entries}, "secret_digests": digests}
        facts = {"exists": found.exists, "groups": list(record.groups)}
        return ObservedResource(
            rid, handle, True, self.stack, CLIENT_FIELDS.hash(spec), HASH_VERSION, Status.PRESENT, spec, facts
        )

    # ------------------------------------------------------------------------------------------ apply
    def apply(self, change: Change, emit: EventSink) -> str:
        """Write or remove this stack's entries; errors of the file or the state fail this client only."""
        try:
            if change.action is Action.DELETE:
                return self._delete(change.id.name)
            return self._write(change, emit)
        except (ClientConfigError, ClientStateError, UnknownClientError) as exc:
            raise ProviderError(str(change.id), change.action.value, exc.message, hint=exc.hint) from None

    def _write(self, change: Change, emit: EventSink) -> str:
        assert change.desired is not None
        if change.observed is not None and change.observed.status == Status.INVALID:
            problem = str(change.observed.facts.get("error") or f"{change.observed.handle} could not be parsed")
            raise ProviderError(
                str(change.id), change.action.value, problem, hint="fix the file by hand; it was left untouched"
            )
        spec = change.desired.spec
        name, path, wanted = change.id.name, Path(spec["path"]), dict(spec["entries"])
        client = get_client(name)
        confinement = self._confinement(spec, path)
        ours = self._ours_at(client, path)
        foreign = self._foreign_now(client, path, wanted, ours, confinement)
        for entry in foreign:
            emit(Event(str(change.id), "progress", _conflict_note(str(change.id), entry, path, [])))
        # Sorted names and ToolHive's key order: a saved plan (JSON, sorted keys) then writes the very same bytes.
        upserts = {entry: in_client_order(client, wanted[entry]) for entry in sorted(wanted) if entry not in foreign}
        bearer = {entry: str(secret) for entry, secret in (spec.get("bearer") or {}).items() if entry in upserts}
        for entry, secret in bearer.items():
            upserts[entry] = reveal(client, upserts[entry], self._value(change, secret))
        groups = list(spec.get("groups", ()))
        # Record first what the file may hold after the write, so a crash in between never leaves an entry of ours
        # looking hand-written (it would then be left alone forever); a name recorded but absent is simply re-added.
        self.state.set(name, ClientRecord.of(path, groups, ours | set(upserts), confinement, bearer))
        # A desired client exists only if it is installed or declared with create: true, so the file may be created.
        removals = sorted(ours - set(wanted))
        private = bool(bearer)  # a token in the file: 0600, whatever mode the file had
        changed = write_entries(client, path, upserts, removals, create=True, confinement=confinement, private=private)
        self.state.set(name, ClientRecord.of(path, groups, set(upserts), confinement, bearer))
        note = "written" if changed else "already up to date"
        return note + (f" (left {len(foreign)} hand-written entry alone)" if foreign else "")

    def _value(self, change: Change, secret: str) -> SecretValue:
        """The token, read now (the store or the declared source, as a workload's secret is at apply time)."""
        if self.secrets is None:
            raise ProviderError(str(change.id), change.action.value, f"no secret store to read {secret!r} from")
        try:
            return self.secrets.value(secret)
        except ToolhiveApplyError as exc:
            raise ProviderError(str(change.id), change.action.value, exc.message, hint=exc.hint) from None

    def _confinement(self, spec: Mapping[str, Any], path: Path) -> Confinement:
        """Where the planned file may be: as planned (`source`), or for a plan saved before it was carried, the
        planned path itself and the provider's home."""
        source = spec.get("source")
        if isinstance(source, Mapping) and isinstance(source.get("home"), str):
            return Confinement.of(Path(source["home"]), path if source.get("named") else None)
        return Confinement.of(self.default_home(), path)

    def _ours_at(self, client: ClientSpec, path: Path) -> set[str]:
        """The entries this stack wrote into `path`; when the client's file moved, ours leave the old file first."""
        record = self.state.load().get(client.name)
        if record is None:
            return set()
        if record.path != path:
            write_entries(client, record.path, {}, record.entries, confinement=record.confinement(self.default_home()))
            return set()
        return set(record.entries)

    @staticmethod
    def _foreign_now(
        client: ClientSpec, path: Path, wanted: Mapping[str, object], ours: set[str], confinement: Confinement
    ) -> list[str]:
        """Checked again at apply time: a hand-written entry may have appeared since the plan (a saved one, say)."""
        present = observe(client, path, confinement).entries
        return sorted(entry for entry in wanted if entry in present and entry not in ours)

    def _delete(self, name: str) -> str:
        record = self.state.load().get(name)
        if record is None:
            return "already gone"
        confinement = record.confinement(self.default_home())
        write_entries(get_client(name), record.path, {}, record.entries, confinement=confinement)
        self.state.set(name, None)
        return "entries removed"
