"""The `treedistill` command line."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="treedistill", description="Distilled dataset builder (MCP server)")
    parser.add_argument("--db", help="SQLite database path (default: $TREEDISTILL_DB or the user data dir)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="Run the MCP server over stdio")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from server.app import create_server

    create_server(args.db).run("stdio")


if __name__ == "__main__":
    main()
