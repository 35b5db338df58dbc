"""ToolHive-shaped views of live state (API, RunConfig, registry, client and manifest exports); no Docker calls."""
