"""SQLite storage through sqlite-utils: the only SQL (catalog, work queue, curation, migrations, lock)."""

from __future__ import annotations

import sys


def _import_sqlite_utils_without_dataframes() -> None:
    """Import sqlite-utils with pandas and numpy hidden. When they are installed it imports both at start (to map
    their types for inserts we never make: every write here is SQL), which costs every start about 0.25 s
    for pandas and more for numpy. Hidden only while it loads, and only if not already imported, so they
    import normally afterwards (the near-duplicate search uses numpy)."""
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_import_sqlite_utils_without_dataframes()
