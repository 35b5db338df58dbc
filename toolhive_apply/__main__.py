"""`python -m toolhive_apply` runs the CLI."""

from toolhive_apply.cli.app import main

main()
