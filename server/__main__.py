"""`python -m server`: the same as `treedistill`."""

from server.cli import main

main()
