"""`python -m toolhive_apply` runs the CLI."""

from toolhive_apply.cli import main

main()
