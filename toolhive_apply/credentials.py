"""The credentials in a run's environment, by variable name: refused in templates, scrubbed from every output.

A merge-request pipeline plans untrusted changes with the tool's own credentials in its environment: the
encrypted store's password, a Vault token or AppRole secret id, the CI job's JWT that Vault accepts as a login.
A manifest that could copy one into a field (`env('VAULT_TOKEN')`) would print it in the plan, so `env()` refuses
these names (manifest/template.py) and `register_credentials`, called once where the CLI starts, hands their
values to the scrubber (redact.py) so that no path that prints them shows them.

Names are compared in upper case: a lower-case twin is not what Vault or ToolHive read, but it has no honest use
in a manifest either. Every VAULT_* / BAO_* variable counts as a credential unless it is one of the settings
listed here (an address or a CA file is not a secret); only the explicitly named ones have their values
scrubbed, since a setting such as VAULT_FORMAT=json must not blank every "json" in the output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from toolhive_apply.redact import register
from toolhive_apply.stores.environment import PREFIX as SECRET_ENV_PREFIX
from toolhive_apply.stores.vault_settings import DEFAULT_SECRET_ID_ENV

PASSWORD_ENV: Final = "TOOLHIVE_SECRETS_PASSWORD"  # the encrypted store's password (ToolHive's own variable)
VAULT_TOKEN_ENV: Final = "VAULT_TOKEN"
VAULT_ROLE_ID_ENV: Final = "VAULT_ROLE_ID"
HMAC_KEY_ENV: Final = "TOOLHIVE_APPLY_HMAC_KEY"  # the key of the stack's secret digests

# The values of these are scrubbed whenever they are set. CI entries are the job's own identity, present in every
# pipeline without being asked for: GitLab's job token and JWTs (the usual Vault JWT login input), registry and
# deploy passwords and DOCKER_AUTH_CONFIG; GitHub's OIDC token request token and runtime token.
CREDENTIAL_VARIABLES: Final = frozenset(
    {
        PASSWORD_ENV,
        HMAC_KEY_ENV,
        VAULT_TOKEN_ENV,
        VAULT_ROLE_ID_ENV,
        DEFAULT_SECRET_ID_ENV,
        "BAO_TOKEN",
        "CI_JOB_TOKEN",
        "CI_JOB_JWT",
        "CI_JOB_JWT_V1",
        "CI_JOB_JWT_V2",
        "CI_REGISTRY_PASSWORD",
        "CI_DEPENDENCY_PROXY_PASSWORD",
        "CI_DEPLOY_PASSWORD",
        "DOCKER_AUTH_CONFIG",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
    }
)
CREDENTIAL_PREFIXES: Final = (SECRET_ENV_PREFIX,)  # the environment store's secrets: TOOLHIVE_SECRET_<key>
VAULT_PREFIXES: Final = ("VAULT_", "BAO_")
VAULT_SETTINGS: Final = frozenset(
    {
        "ADDR",
        "NAMESPACE",
        "CACERT",
        "CAPATH",
        "CLIENT_CERT",
        "SKIP_VERIFY",
        "TLS_SERVER_NAME",
        "CLIENT_TIMEOUT",
        "MAX_RETRIES",
        "FORMAT",
        "LOG_LEVEL",
    }
)


def _scrubbed_name(name: str) -> bool:
    upper = name.upper()
    return upper in CREDENTIAL_VARIABLES or upper.startswith(CREDENTIAL_PREFIXES)


def is_credential(name: str, named: Iterable[str] = ()) -> bool:
    """Whether env(name) must be refused; `named` are the variables the manifest itself names as credentials."""
    upper = name.upper()
    if _scrubbed_name(name) or upper in {n.upper() for n in named}:
        return True
    prefix = next((p for p in VAULT_PREFIXES if upper.startswith(p)), None)
    return prefix is not None and upper[len(prefix) :] not in VAULT_SETTINGS


def manifest_credential_names(data: Mapping[str, Any]) -> set[str]:
    """Variables a manifest names as credentials: the Vault login inputs in settings.secrets.vault.auth
    (secret_id_env, jwt_env) and the sources of its declared secrets (secrets[].from.env). Plain strings only:
    `data` may not have passed the schema yet."""
    names: set[str] = set()
    settings = data.get("settings")
    auth = _dig(settings, "secrets", "vault", "auth")
    for key in ("secret_id_env", "jwt_env"):
        if isinstance(auth.get(key), str):
            names.add(auth[key])
    secrets = data.get("secrets")
    for entry in secrets if isinstance(secrets, list) else ():
        source = _dig(entry, "from")
        if isinstance(source.get("env"), str):
            names.add(source["env"])
    return names


def _dig(node: Any, *keys: str) -> Mapping[str, Any]:
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def register_credentials(environ: Mapping[str, str], named: Iterable[str] = ()) -> None:
    """Scrub the value of every credential variable that is set (and of the `named` ones) from all output."""
    wanted = {n.upper() for n in named}
    for name, value in environ.items():
        if _scrubbed_name(name) or name.upper() in wanted:
            register(value)
