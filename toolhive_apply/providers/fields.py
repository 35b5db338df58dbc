"""The field-policy table of each resource kind: what the engine needs to know of a provider's fields.

One table per provider (engine/fields.py says what a rule means). A field not listed is hashed, compared, shown
with -v only and changed as its kind changes: a new workload field (oidc, audit_config, ...) needs a line here only
when it is soft, sensitive, a headline or updated otherwise. Changing `soft` changes the hash of existing
resources, and so recreates them: a field's softness is part of the label format.
"""

from __future__ import annotations

from typing import Final

from toolhive_apply.engine.fields import FieldRule, FieldTable, Sensitive, Update, register
from toolhive_apply.engine.resource import Kind

SOFT: Final = FieldRule(soft=True)
HEADLINE: Final = FieldRule(headline=True)


def _workload_status(status: str) -> str:
    """`exited` -> `container exited`; a status that already names its part (`proxy exited`) stays as it is."""
    return status if status.startswith("proxy") else f"container {status}"


WORKLOAD_FIELDS: Final = FieldTable(
    Kind.WORKLOAD,
    {
        # soft: they describe the unit, or acknowledge how it was checked (spec_checks.py), never shape it
        "description": SOFT,
        "ready_timeout": SOFT,
        "parts": SOFT,  # the Docker objects the unit is made of, so a plan shows what it creates
        "allow_privileged": SOFT,
        "allow_host_paths": SOFT,
        "endpoint_documents": SOFT,  # the JWKS a proxy is given; its digest and key ids are in the hashed `endpoint`
        # the short plan of a create or delete
        "image": HEADLINE,
        "transport": HEADLINE,
        "proxy_mode": HEADLINE,
        "proxy_port": HEADLINE,
        "host": HEADLINE,
        "group": HEADLINE,
        "url": HEADLINE,
        "network_isolation": HEADLINE,
        "secrets": HEADLINE,
        "volumes": HEADLINE,
        "permission_profile.*": FieldRule(always_shown=True),  # what the server may touch
        "env_vars.*": FieldRule(names_only=True),  # names in the short form, values with -v
        # keyed digests of secret values: no value, but they tell two values apart
        "secret_digests": FieldRule(sensitive=Sensitive.MARKED),
        "secret_digests.*": FieldRule(sensitive=Sensitive.NAMED),
    },
    update=Update.REPLACE,
    parts="parts",
    describe_status=_workload_status,
)

SECRET_FIELDS: Final = FieldTable(
    Kind.SECRET,
    {
        "description": SOFT,
        "source": SOFT,  # where the value came from (env, file): describes, does not shape
        "key": HEADLINE,
        "digest": FieldRule(sensitive=Sensitive.VALUE),
    },
    update=Update.IN_PLACE,
)

REGISTRY_FIELDS: Final = FieldTable(
    Kind.REGISTRY,
    {"source": SOFT, "location": HEADLINE},  # the location is what the registry is; `source` only shows it
    update=Update.REPLACE,
)

CLIENT_FIELDS: Final = FieldTable(
    Kind.CLIENT,
    {
        "groups": SOFT,
        "source": SOFT,
        "path": HEADLINE,
        "bearer": SOFT,  # which secret each entry's token is: the placeholder in the entry already says so
        # keyed digests of the tokens' secrets (client_auth): rotating one updates exactly the files holding it
        "secret_digests": FieldRule(sensitive=Sensitive.MARKED),
        "secret_digests.*": FieldRule(sensitive=Sensitive.NAMED),
    },
    update=Update.IN_PLACE,
)

STACK_FIELDS: Final = FieldTable(Kind.STACK, {}, update=Update.REPLACE)

register(WORKLOAD_FIELDS, SECRET_FIELDS, REGISTRY_FIELDS, CLIENT_FIELDS, STACK_FIELDS)
