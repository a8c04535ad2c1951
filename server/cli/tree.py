"""`treedistill tree import|export`: bring a tag tree (a syllabus, a book's table of contents) or take one out.

Like `export`, it goes through a local engine that starts no scheduler: an import is one transaction, safe while a
server or a `distill` works on it (tags with work in flight below them are refused, as in the MCP tools).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treedistill.server.cli.export import find_project
from treedistill.server.cli.reports import local_engine
from treedistill.server.engine import Engine
from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.models import Project, Tag
from treedistill.server.config import MAX_TAG_DEPTH
from treedistill.server.text.outline import FORMATS, parse_outline
from treedistill.server.tree_editor import TreeMerge

SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".json": "json"}  # anything else: text


def add_tree_command(command: Any, global_options: Any) -> argparse.ArgumentParser:
    """The `tree` command and its `import` and `export` subcommands (`command` is parser.py's factory)."""
    cmd = command("tree", "import a tag tree from an outline file, or export the tree",
                  "Bring your own tag tree (markdown headings or bullets, an indented text outline, a numbered "
                  "table of contents, or JSON) or write the project's tree in those formats. Calls no model.")
    actions = cmd.add_subparsers(dest="tree_command", metavar="ACTION", required=True,
                                 help="import (an outline file into the tree) or export (the tree as an outline)")
    sub = actions.add_parser("import", help="merge an outline file into a project's tag tree",
                             description="Merge an outline file into the tag tree: tags already there (same name "
                                         "after normalisation) are skipped, so importing twice adds nothing. "
                                         "All or nothing: a bad line is reported and nothing is written.")
    global_options(sub)
    sub.add_argument("file", help="the outline file ('-' reads stdin)")
    _project_options(sub)
    sub.add_argument("--format", choices=FORMATS, help="default: from the suffix (.md markdown, .json json, "
                                                       "else text)")
    sub.add_argument("--dry-run", action="store_true", help="only report what would be added and skipped")
    sub = actions.add_parser("export", help="print a project's tag tree as an outline",
                             description="Print the tag tree (or one branch with --under) as an outline that "
                                         "`tree import` reads back to the same tree.")
    global_options(sub)
    _project_options(sub)
    sub.add_argument("--format", choices=FORMATS, default="text", help="outline format (text)")
    sub.add_argument("--out", help="write to this file instead of stdout")
    return cmd


def _project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", metavar="P", help="project id or name (default: the only project)")
    parser.add_argument("--under", metavar="TAG", help="a tag id or full path ('Mechanics > Kinematics'): import "
                                                       "under it / export only its branch (default: the top level)")


def read_outline(file: str, fmt: str | None) -> tuple[str, str]:
    """The outline file's text and its format (given, else from the suffix)."""
    import sys

    if file == "-":
        return sys.stdin.read(), fmt or "text"
    path = Path(file).expanduser()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read the outline {file}: {exc}") from None
    return content, fmt or SUFFIX_FORMATS.get(path.suffix.lower(), "text")


def checked_outline(file: str) -> tuple[str, str]:
    """The outline file's text and format, parsed once so that a bad line is refused before anything is made."""
    content, fmt = read_outline(file, None)
    parse_outline(content, fmt, max_depth=MAX_TAG_DEPTH)
    return content, fmt


def import_lines(report: TreeMerge, project: Project, under: Tag | None) -> list[str]:
    where = f"under '{under.path}'" if under else "at the top level"
    verb = "Would add" if report.dry_run else "Added"
    lines = [f"{verb} {report.added} tag(s) {where} of project '{project.name}'; {report.skipped} already there."]
    lines += [f"  + {tag.path}" for tag in report.added_tags]
    if report.added > len(report.added_tags):
        lines.append(f"  ... and {report.added - len(report.added_tags)} more")
    if report.dry_run:
        lines.append("Dry run: nothing was written.")
    return lines


def run_tree(args: argparse.Namespace, db_path: Path, environ: Mapping[str, str]) -> list[str]:
    """Run `tree import` or `tree export`; returns the lines to print."""
    with local_engine(db_path, environ, write=args.tree_command == "import") as engine:
        project = _project(engine, args.project)
        under = _tag(engine, project, args.under)
        if args.tree_command == "import":
            content, fmt = read_outline(args.file, args.format)
            report = asyncio.run(engine.import_tree(project.id, content, fmt, under.id if under else None,
                                                    args.dry_run))
            return import_lines(report, project, under)
        text, _ = engine.export_tree(project.id, args.format, under.id if under else None)
    if args.out:
        Path(args.out).expanduser().write_text(text, encoding="utf-8")
        return []
    return [text.rstrip("\n")]


def _project(engine: Engine, reference: str | None) -> Project:
    if reference is not None:
        return find_project(engine, reference)
    projects = engine.list_projects()
    if len(projects) != 1:
        raise InvalidInput(f"The database has {len(projects)} projects: say which with --project (id or name); "
                           "`treedistill projects` lists them.")
    return engine.get_project(projects[0].id)


def _tag(engine: Engine, project: Project, reference: str | None) -> Tag | None:
    """The tag --under names, by id or by full path."""
    if reference is None:
        return None
    if reference.strip().isdigit():
        try:
            return engine.get_tag(project.id, int(reference))
        except NotFound:
            pass
    wanted = " > ".join(part.strip() for part in reference.split(">"))
    _, tags, _ = engine.get_tree(project.id)
    tag = next((tag for tag in tags if tag.path == wanted), None)
    if tag is None:
        raise NotFound(f"No tag {reference!r} in project '{project.name}' (give an id or a full path such as "
                       "'Mechanics > Kinematics'); `treedistill tree export` shows the tree.")
    return tag
