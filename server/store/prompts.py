"""A project's own prompt templates: the override per kind (prompt_overrides), pointing at the text of a version
the project saved (prompt_templates, kept after a reset or a change)."""

from __future__ import annotations

from typing import Any

from treedistill.server.store.catalog import Store, now_iso


class PromptStore:
    """Prompt overrides of projects; shares the Store's connection and transactions. Every read and write is
    keyed by the project, so one project's template can never reach another's prompts."""

    def __init__(self, store: Store):
        self.store = store

    def templates(self, project_id: int) -> dict[str, str]:
        """kind -> the project's own template, for the kinds it overrides."""
        return {row["kind"]: row["template"] for row in self.overrides(project_id)}

    def overrides(self, project_id: int) -> list[dict[str, Any]]:
        """The project's overrides: kind, version, template and when it was set."""
        return self.store.rows(
            "SELECT o.kind, o.version, t.template, o.updated_at FROM prompt_overrides o JOIN prompt_templates t"
            " ON t.project_id = o.project_id AND t.kind = o.kind AND t.version = o.version"
            " WHERE o.project_id = ? ORDER BY o.kind", (project_id,))

    def set_template(self, project_id: int, kind: str, template: str, version: str) -> None:
        """Make `template` (already validated) the project's prompt of `kind`; earlier versions stay readable."""
        now = now_iso()
        with self.store.transaction():
            self.store.db.execute("INSERT OR IGNORE INTO prompt_templates (project_id, kind, version, template,"
                                  " created_at) VALUES (?, ?, ?, ?, ?)", (project_id, kind, version, template, now))
            self.store.db.execute("INSERT OR REPLACE INTO prompt_overrides (project_id, kind, version, updated_at)"
                                  " VALUES (?, ?, ?, ?)", (project_id, kind, version, now))

    def reset(self, project_id: int, kind: str) -> bool:
        """Back to the default of `kind`; returns whether the project had its own template."""
        return self.store.db.execute("DELETE FROM prompt_overrides WHERE project_id = ? AND kind = ?",
                                     (project_id, kind)).rowcount > 0
