"""toolhive-apply: plan and apply ToolHive-style MCP infrastructure from a declarative manifest."""

__version__ = "0.1.0"
