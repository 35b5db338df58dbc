"""Compatibility shim: the Provider contract lives in the engine (engine/provider.py), which owns it."""

from __future__ import annotations

from toolhive_apply.engine.provider import Event, EventSink, Phase, Provider

__all__ = ["Event", "EventSink", "Phase", "Provider"]
