"""The command line: Typer commands, shared options and the one error boundary (app.main); only operations is called."""
