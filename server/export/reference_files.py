"""Reading a benchmark's questions from the files a user names: JSONL, CSV, or Parquet when pyarrow is installed.

Each record's text is its `field` when given, else the first of QUESTION_FIELDS it has (a JSONL line may also
be a bare string). Paths are confined to the project's export directory like exports (`confined_path`).
Every file is read and checked before anything is written: a missing, outside or malformed file raises
InvalidInput naming it (and the line), so nothing changes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from treedistill.server.errors import InvalidInput
from treedistill.server.export.writer import confined_path

QUESTION_FIELDS = ("question", "prompt", "instruction", "input", "problem", "query", "text")
SUFFIXES = (".jsonl", ".csv", ".parquet")


def read_reference_files(export_dir: Path, names: list[str], field: str | None,
                         allow_any_path: bool) -> dict[str, list[str]]:
    """File name as given -> its records' texts, in file order. Raises InvalidInput."""
    paths = {name: confined_path(export_dir, name, allow_any_path, what="Benchmark file", elsewhere="read elsewhere")
             for name in names}
    for name, path in paths.items():
        if path.suffix.lower() not in SUFFIXES:
            raise InvalidInput(f"Benchmark file {name!r}: give a .jsonl, .csv or .parquet file. Nothing was changed.")
        if not path.is_file():
            raise InvalidInput(f"Benchmark file {name!r} does not exist ({path}). Put it in the project's export "
                               "directory and give its name. Nothing was changed.")
    return {name: _read(name, path, field) for name, path in paths.items()}


def _read(name: str, path: Path, field: str | None) -> list[str]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return _jsonl(name, path, field)
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as file:
                return [_text_of(row, name, number, field) for number, row in enumerate(csv.DictReader(file), 2)]
        return _parquet(name, path, field)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"Benchmark file {name!r} cannot be read: {exc}. Nothing was changed.") from None


def _jsonl(name: str, path: Path, field: str | None) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"Benchmark file {name!r}, line {number}: not JSON ({exc}). Nothing was "
                                   "changed.") from None
            texts.append(record if isinstance(record, str) and field is None else
                         _text_of(record, name, number, field))
    return texts


def _parquet(name: str, path: Path, field: str | None) -> list[str]:
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(f"Benchmark file {name!r} is Parquet, which needs pyarrow: pip install pyarrow, or "
                           "give the questions as JSONL or CSV. Nothing was changed.") from None
    try:
        columns = pq.read_schema(path).names
        column = field if field is not None else next((c for c in QUESTION_FIELDS if c in columns), None)
        if column not in columns:
            raise InvalidInput(f"Benchmark file {name!r} has no column {column or 'named ' + '/'.join(QUESTION_FIELDS)}"
                               f" (its columns: {', '.join(columns)}); name one with field. Nothing was changed.")
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    except (pyarrow.ArrowException, OSError) as exc:  # ArrowInvalid for a file that is not Parquet
        raise InvalidInput(f"Benchmark file {name!r} is not readable Parquet ({exc}). Nothing was changed.") from None
    return [value for value in values if isinstance(value, str)]


def _text_of(record: Any, name: str, line: int, field: str | None) -> str:
    if isinstance(record, dict):
        keys = (field,) if field is not None else QUESTION_FIELDS
        for key in keys:
            if isinstance(record.get(key), str):
                return record[key]
    wanted = repr(field) if field is not None else "one of " + ", ".join(QUESTION_FIELDS)
    raise InvalidInput(f"Benchmark file {name!r}, line {line}: no text field {wanted}; name the question's field "
                       "with field. Nothing was changed.")
