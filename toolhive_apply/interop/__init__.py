"""Interoperation with ToolHive's other homes: render a manifest for its Kubernetes operator, import thv's state."""
