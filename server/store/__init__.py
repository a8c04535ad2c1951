"""SQLite storage through sqlite-utils: the only SQL (catalog, work queue, curation, migrations, lock)."""
