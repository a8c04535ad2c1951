"""Tag trees as text: parse an outline someone brings (markdown, text, json) and write one back.

Pure functions, no database. A parsed tree is a list of `OutlineNode`s; siblings whose names are the same
after normalisation (`dedup.normalize`, the rule generated tags follow) are merged into one node, children
included. Every error is an InvalidInput that names the line (markdown, text) or the place in the tree (json).

Formats:
- markdown: headings (`#`, `##`, ...: a deeper heading is a child of the one above) and nested bullet or
  numbered lists (`-`, `*`, `+`, `1.`; a list sits under the heading above it). Other lines (prose) are skipped.
- text: an indented outline (one tag per line, children indented more than their parent), or a book's
  numbered table of contents (every line starts with a number such as `1.2.3`; the number gives the level
  and is dropped from the name).
- json: nested objects (`{"Mechanics": {"Kinematics": {}}}`; a leaf's value is `{}`, `null` or `[]`) or lists
  of `{"name": ..., "children": [...]}` (a list item may also be a bare string, a leaf).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from treedistill.server.config import MAX_IMPORT_CHARS, MAX_IMPORT_TAGS, MAX_TAG_DEPTH, MAX_TAG_NAME_CHARS
from treedistill.server.errors import InvalidInput
from treedistill.server.text.dedup import normalize

FORMATS = ("markdown", "text", "json")
INDENT = "  "
_SPACES = re.compile(r"\s+")
_HEADING = re.compile(r"^(#{1,6})(?:\s+(.*?))?\s*$")
_BULLET = re.compile(r"^([ \t]*)(?:[-*+]|\d+[.)])(?:\s+(.*))?$")
_NUMBERED = re.compile(r"^\s*(\d+(?:\.\d+)*)\.?\s+(\S.*)$")
_CLOSING_HASHES = re.compile(r"\s+#+$")


@dataclass
class OutlineNode:
    name: str
    where: str  # "line 12", or the node's place in a json tree
    children: list[OutlineNode] = field(default_factory=list)
    norm: str = ""  # the name's normal form (dedup.normalize)
    by_norm: dict[str, OutlineNode] = field(default_factory=dict, repr=False)  # children by normal form


class _Builder:
    """Collects nodes level by level, checking the bounds, and merges siblings with the same normal form."""

    def __init__(self, max_depth: int, ancestors: list[str]):
        self.max_depth = max_depth
        self.above = ancestors  # the names above the import point
        self.ancestors = [normalize(name) for name in ancestors]
        self.top = OutlineNode("", "")  # holds the top-level nodes
        self.count = 0

    @property
    def roots(self) -> list[OutlineNode]:
        return self.top.children

    def add(self, parent_chain: list[OutlineNode], raw_name: str, where: str) -> OutlineNode:
        """Add a tag below the last node of `parent_chain` (the root when empty) and return its node."""
        name, key = _cleaned(raw_name, where)
        depth = len(parent_chain) + 1
        if depth > self.max_depth:
            raise InvalidInput(f"{where}: '{name}' would be at depth {depth} below the import point; at most "
                               f"{self.max_depth} level(s) fit there (tags go {MAX_TAG_DEPTH} levels deep from the "
                               "topic). Nothing was imported.")
        if key in self.ancestors or any(node.norm == key for node in parent_chain):
            chain = " > ".join([*self.above, *(node.name for node in parent_chain), name])
            raise InvalidInput(f"{where}: '{name}' repeats the name of a tag above it ({chain}), which looks like a "
                               "cycle; give it another name. Nothing was imported.")
        parent = parent_chain[-1] if parent_chain else self.top
        if key in parent.by_norm:
            return parent.by_norm[key]  # the same tag twice: one node, children merged
        self.count += 1
        if self.count > MAX_IMPORT_TAGS:
            raise InvalidInput(f"{where}: more than {MAX_IMPORT_TAGS:,} tags in one import; split the outline into "
                               "branches and import each under its tag. Nothing was imported.")
        node = parent.by_norm[key] = OutlineNode(name, where, norm=key)
        parent.children.append(node)
        return node


def clean_name(raw: str, where: str) -> str:
    """A tag name with its whitespace collapsed; InvalidInput when it is empty or too long."""
    return _cleaned(raw, where)[0]


def _cleaned(raw: str, where: str) -> tuple[str, str]:
    """The clean name and its normal form."""
    name = _SPACES.sub(" ", raw).strip()
    key = normalize(name)
    if not key:
        raise InvalidInput(f"{where}: empty tag name{f' ({raw!r})' if raw.strip() else ''}. Nothing was imported.")
    if len(name) > MAX_TAG_NAME_CHARS:
        raise InvalidInput(f"{where}: a tag name of {len(name):,} characters; at most {MAX_TAG_NAME_CHARS} are "
                           "allowed. Nothing was imported.")
    return name, key


def parse_outline(content: str, fmt: str, *, max_depth: int, ancestors: list[str] | None = None) -> list[OutlineNode]:
    """The tree `content` describes in format `fmt`; `ancestors` are the names above the import point."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}. Nothing was imported.")
    if len(content) > MAX_IMPORT_CHARS:
        raise InvalidInput(f"The outline has {len(content):,} characters; at most {MAX_IMPORT_CHARS:,} are allowed "
                           "in one import. Nothing was imported.")
    builder = _Builder(max_depth, ancestors or [])
    {"markdown": _parse_markdown, "text": _parse_text, "json": _parse_json}[fmt](content, builder)
    if not builder.roots:
        raise InvalidInput(f"The {fmt} outline holds no tag (markdown: headings or list items; text: one tag "
                           "per line; json: objects or lists of names). Nothing was imported.")
    return builder.roots


def outline_of_names(names: list[str], *, ancestors: list[str]) -> list[OutlineNode]:
    """Sibling tags from a list of names (repeats count once); `ancestors` are the names above them."""
    builder = _Builder(1, ancestors)
    for index, name in enumerate(names, 1):
        builder.add([], name, f"names item {index}")
    return builder.roots


class _Indents:
    """Levels of an indented list: a line indented more than the one above is its child; a line indented less
    must line up with one of the lines above it, and one file indents with tabs or with spaces, not both."""

    def __init__(self) -> None:
        self.widths: list[int] = []  # indentation of each open level
        self.style: str | None = None

    def level(self, indent: str, line_number: int) -> int:
        """The 0-based level of a line indented by `indent`."""
        if indent:
            style = "tabs" if indent == "\t" * len(indent) else "spaces" if indent == " " * len(indent) else "both"
            if style == "both" or self.style not in (None, style):
                raise InvalidInput(f"line {line_number}: indentation mixes tabs and spaces; indent with one of "
                                   "them only. Nothing was imported.")
            self.style = style
        width = len(indent)
        if not self.widths or width > self.widths[-1]:
            self.widths.append(width)
            return len(self.widths) - 1
        opened = ", ".join(map(str, self.widths))
        while self.widths and self.widths[-1] > width:
            self.widths.pop()
        if not self.widths or self.widths[-1] != width:
            raise InvalidInput(f"line {line_number}: indented by {width}, which lines up with no line above it "
                               f"(the open levels are indented by {opened}); fix the indentation. "
                               "Nothing was imported.")
        return len(self.widths) - 1


def _parse_markdown(content: str, builder: _Builder) -> None:
    headings: list[tuple[int, OutlineNode]] = []  # the open headings: (number of #, node)
    items: list[OutlineNode] = []  # the open list items under the last heading
    indents = _Indents()
    fenced = False
    for number, line in enumerate(content.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or not stripped:
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            name = _CLOSING_HASHES.sub("", heading.group(2) or "")
            headings.append((level, builder.add([node for _, node in headings], name, f"line {number}")))
            items, indents = [], _Indents()  # a list starts afresh under each heading
            continue
        item = _BULLET.match(line)
        if item:  # anything else is prose, skipped
            del items[indents.level(item.group(1), number):]
            items.append(builder.add([node for _, node in headings] + items, item.group(2) or "",
                                     f"line {number}"))


def _parse_text(content: str, builder: _Builder) -> None:
    lines = [(number, line) for number, line in enumerate(content.splitlines(), 1) if line.strip()]
    sections = [_NUMBERED.match(line) for _, line in lines]
    chain: list[OutlineNode] = []
    if lines and all(sections) and any("." in section.group(1) for section in sections):
        for (number, _), section in zip(lines, sections):  # a table of contents: 1, 1.1, 1.1.1, ...
            depth = section.group(1).count(".") + 1
            if depth > len(chain) + 1:
                raise InvalidInput(f"line {number}: section {section.group(1)} has no enclosing section above it "
                                   f"(a level-{depth} number right after a level-{len(chain)} one). "
                                   "Nothing was imported.")
            del chain[depth - 1:]
            chain.append(builder.add(chain, section.group(2), f"line {number}"))
        return
    indents = _Indents()
    for number, line in lines:
        name = line.lstrip(" \t")
        del chain[indents.level(line[:len(line) - len(name)], number):]
        chain.append(builder.add(chain, name, f"line {number}"))


def _parse_json(content: str, builder: _Builder) -> None:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}). "
                           "Nothing was imported.") from None
    except RecursionError:
        raise InvalidInput("The JSON is nested too deeply to be a tag tree. Nothing was imported.") from None
    _json_children(data, [], builder)


def _is_named(value: Any) -> bool:
    """A `{"name": ..., "children": ...}` node (a string name, no other keys)."""
    return isinstance(value, dict) and isinstance(value.get("name"), str) and set(value) <= {"name", "children"}


def _json_place(chain: list[OutlineNode], last: str) -> str:
    return "JSON at " + " > ".join([node.name for node in chain] + [last])


def _json_children(value: Any, chain: list[OutlineNode], builder: _Builder) -> None:
    """Add the tags `value` describes below the last node of `chain`."""
    if value is None or value == "":
        return
    if _is_named(value):
        value = [value]
    if isinstance(value, dict):
        for key, child in value.items():
            node = builder.add(chain, key, _json_place(chain, repr(key)))
            _json_children(child, [*chain, node], builder)
        return
    if not isinstance(value, list):
        raise InvalidInput(f"{_json_place(chain, '(value)')}: expected an object, a list or null, not "
                           f"{json.dumps(value)[:80]}. Nothing was imported.")
    for index, item in enumerate(value, 1):
        if isinstance(item, str):
            builder.add(chain, item, _json_place(chain, f"item {index}"))
        elif _is_named(item):
            node = builder.add(chain, item["name"], _json_place(chain, f"item {index} ({item['name'][:40]!r})"))
            _json_children(item.get("children"), [*chain, node], builder)
        elif isinstance(item, dict) and "name" not in item:
            _json_children(item, chain, builder)
        else:
            raise InvalidInput(f"{_json_place(chain, f'item {index}')}: expected a name, an object or "
                               '{"name": ..., "children": [...]}, not ' f"{json.dumps(item)[:80]}. "
                               "Nothing was imported.")


def write_outline(roots: list[OutlineNode], fmt: str) -> str:
    """`roots` in format `fmt`, so that parse_outline reads back the same tree: markdown as nested bullets,
    text as an indented outline, json as `{"name", "children"}` lists."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if fmt == "json":
        return json.dumps([_as_json(node) for node in roots], ensure_ascii=False, indent=2) + "\n"
    marker = "- " if fmt == "markdown" else ""
    lines: list[str] = []
    stack = [(node, 0) for node in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        lines.append(f"{INDENT * depth}{marker}{node.name}")
        stack += [(child, depth + 1) for child in reversed(node.children)]
    return "\n".join(lines) + "\n"


def _as_json(node: OutlineNode) -> dict[str, Any]:
    return {"name": node.name, **({"children": [_as_json(child) for child in node.children]} if node.children else {})}


def count_nodes(roots: list[OutlineNode]) -> int:
    """Tags in the tree."""
    return sum(1 + count_nodes(node.children) for node in roots)
