"""treedistill: an MCP server that distills fine-tuning datasets from a teacher model through a tag tree.

The repository keeps `server/` and `tools/` at its top level; installed, they are `treedistill.server`
and `treedistill.tools`, and this folder is the `treedistill` package itself.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("treedistill")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
