"""Docker's API errors as one sentence for a workload's failure (shared by the provider and its unit builder)."""

from __future__ import annotations

import docker.errors

from toolhive_apply.providers.workload.host_ports import port_error


def api_message(exc: docker.errors.APIError) -> str:
    """The engine's explanation, or a taken port in one sentence instead of Docker's endpoint text."""
    explanation = getattr(exc, "explanation", None)
    text = explanation.decode() if isinstance(explanation, bytes) else str(explanation or exc)
    return port_error(text) or text.strip()  # a taken port in one sentence, not Docker's endpoint text
