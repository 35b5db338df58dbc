"""Registries: server catalogues (file, URL or MCP Registry API; upstream or legacy format) as workload sources."""
