"""Unit tests of server/text/outline.py: parsing outlines people bring and writing the tree back."""

from __future__ import annotations

import json
import time

import pytest

from treedistill.server.errors import InvalidInput
from treedistill.server.text.outline import OutlineNode, count_nodes, outline_of_names, parse_outline, write_outline


def shape(nodes: list[OutlineNode]) -> list:
    """[name, [children...]] of a parsed tree, for exact comparison."""
    return [[node.name, shape(node.children)] for node in nodes]


def parse(content: str, fmt: str, **options) -> list:
    return shape(parse_outline(content, fmt, max_depth=options.pop("max_depth", 12), **options))


def test_markdown_headings_and_lists_nest_and_prose_is_skipped():
    content = ("Intro prose.\n# Mechanics ##\n## Kinematics\n* Velocity\n    + Average velocity\n* Speed\n"
               "```\n# not a heading\n- not an item\n```\n### Deep heading\n1) First\n2) Second\n# Optics\n#hashtag\n")
    assert parse(content, "markdown") == [
        ["Mechanics", [["Kinematics", [["Velocity", [["Average velocity", []]]], ["Speed", []],
                                       ["Deep heading", [["First", []], ["Second", []]]]]]]],
        ["Optics", []]]


def test_a_heading_level_skipped_still_nests_below_the_one_above():
    assert parse("## A\n#### B\n### C\n# D\n", "markdown") == [["A", [["B", []], ["C", []]]], ["D", []]]


def test_text_outline_with_tabs_and_a_numbered_table_of_contents():
    assert parse("A\n\tB\n\t\tC\n\tD\nE\n", "text") == [["A", [["B", [["C", []]]], ["D", []]]], ["E", []]]
    toc = "1. Motion\n1.1 Speed\n1.1.1. Units\n1.2 Force\n2 Energy\n"
    assert parse(toc, "text") == [["Motion", [["Speed", [["Units", []]]], ["Force", []]]], ["Energy", []]]
    # Numbers on some lines only (or no dotted number at all): an outline, names kept as written.
    assert parse("2024 Olympics\n  100 m sprint\n", "text") == [["2024 Olympics", [["100 m sprint", []]]]]


def test_json_nested_objects_named_lists_and_mixtures():
    nested = {"A": {"B": None, "C": [], "D": {"E": {}}}, "F": ["G", {"name": "H", "children": {"I": {}}}]}
    assert parse(json.dumps(nested), "json") == [
        ["A", [["B", []], ["C", []], ["D", [["E", []]]]]], ["F", [["G", []], ["H", [["I", []]]]]]]
    assert parse(json.dumps({"name": "Root", "children": ["X"]}), "json") == [["Root", [["X", []]]]]


def test_repeated_siblings_merge_with_the_normalisation_of_generated_tags():
    assert parse("Waves\n  Sound\nWAVES!\n  Light\n  sound\n", "text") == [["Waves", [["Sound", []], ["Light", []]]]]
    assert shape(outline_of_names(["A", " a ", "B"], ancestors=[])) == [["A", []], ["B", []]]


@pytest.mark.parametrize("fmt", ["markdown", "text", "json"])
def test_write_then_parse_is_a_fixed_point(fmt):
    tree = parse_outline("# A\n## B\n- C\n  - D, with a comma\n- 1.2 E\n# F: G\n", "markdown", max_depth=12)
    written = write_outline(tree, fmt)
    again = parse_outline(written, fmt, max_depth=12)
    assert shape(again) == shape(tree) and write_outline(again, fmt) == written and count_nodes(again) == 6


@pytest.mark.parametrize("fmt, content, error", [
    ("text", "A\n    B\n  C\n", "line 3: indented by 2, which lines up with no line above it"),
    ("text", "A\n \tB\n", "line 2: indentation mixes tabs and spaces"),
    ("text", "  A\nB\n", "line 2: indented by 0"),
    ("text", "1 A\n1.1.1 B\n", "line 2: section 1.1.1 has no enclosing section"),
    ("markdown", "#\n", "line 1: empty tag name"),
    ("markdown", "# A\n- B\n- !!!\n", "line 3: empty tag name"),
    ("json", '{"A": {"": {}}}', "JSON at A > '': empty tag name"),
    ("json", '[{"name": "A", "children": [1]}]', "JSON at A > item 1: expected a name"),
    ("json", '"just a string"', "expected an object, a list or null"),
    ("json", "[" * 100_000, "nested too deeply"),
    ("text", "A\n  B\n    a\n", "line 3: 'a' repeats the name of a tag above it (A > B > a)"),
    ("text", "\n\n", "holds no tag"),
    ("yaml", "A", "format must be one of markdown, text, json, not 'yaml'"),
])
def test_bad_input_is_refused_naming_the_line(fmt, content, error):
    with pytest.raises(InvalidInput, match="Nothing was imported") as refused:
        parse_outline(content, fmt, max_depth=12)
    assert error in str(refused.value)


def test_bounds_depth_names_ancestors_and_size():
    with pytest.raises(InvalidInput, match="line 3: 'C' would be at depth 3 below the import point; at most 2"):
        parse_outline("A\n  B\n    C\n", "text", max_depth=2)
    with pytest.raises(InvalidInput, match="'Physics' repeats the name of a tag above it"):
        parse_outline("Optics\n  Physics\n", "text", max_depth=5, ancestors=["Physics"])
    with pytest.raises(InvalidInput, match="line 1: a tag name of 10,000 characters; at most 200"):
        parse_outline("x" * 10_000, "text", max_depth=5)
    with pytest.raises(InvalidInput, match="at most 4,000,000 are allowed"):
        parse_outline("x\n" * 2_000_001, "text", max_depth=5)


def test_too_many_tags_stops_at_the_line_past_the_bound_quickly():
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="line 20001: more than 20,000 tags in one import"):
        parse_outline("\n".join(f"Tag {n}" for n in range(100_000)), "text", max_depth=5)
    assert time.monotonic() - started < 10
    assert count_nodes(parse_outline("\n".join(f"Tag {n}" for n in range(20_000)), "text", max_depth=5)) == 20_000
