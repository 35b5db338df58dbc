"""The client-file resource kind: its provider, and the state file recording what toolhive-apply owns in a file."""
