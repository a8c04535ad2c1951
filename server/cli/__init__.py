"""The `treedistill` command."""
