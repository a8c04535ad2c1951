"""`python -m treedistill`: the same as the `treedistill` command."""

from treedistill.server.cli.main import main

main()
