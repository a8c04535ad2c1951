"""Dataset export: record formats, path confinement and a streaming writer.

Formats, one record per question (answered ones only, by default):
- alpaca:   {"instruction": question, "input": "", "output": answer, "system"?: system}
- sharegpt: {"conversations": [{"from": "system", "value": system}?, {"from": "human", "value": question},
            {"from": "gpt", "value": answer}]}
- openai:   {"messages": [{"role": "system", "content": system}?, {"role": "user", "content": question},
            {"role": "assistant", "content": answer}]}, the chat fine-tuning JSONL of OpenAI and most trainers
- raw:      every stored field: ids, tag path, question, answer, reasoning and its source, models, tokens,
            timestamps, rating, confirmation, judge score and rationale (the reasoning option does not apply)
- dpo:      one record per kept preference pair (make_preference_pairs), in LLaMA-Factory's ranking layout or TRL's
            prompt/chosen/rejected (dpo_style): server/export/dpo.py

Dialogues (auto_distill turns > 1, continue_dialogue): a question's complete later turns follow its answer as
alternating human/gpt turns (sharegpt) or user/assistant messages (openai), the last turn the assistant's; alpaca
records hold the last exchange and every record of a file with dialogues carries LLaMA-Factory's `history` (the
earlier [instruction, response] pairs, [] for one turn); raw records carry `turns`.

Reasoning:
- think: the output / gpt turn / assistant message is "<think>\\n{reasoning}\\n</think>\\n\\n{answer}", the
  DeepSeek-R1 / Qwen3 layout that LLaMA-Factory and most SFT trainers expect for reasoning models;
- field: alpaca records get a "reasoning" key; the gpt turn and the assistant message get "reasoning_content",
  the field DeepSeek's API returns and Qwen3-style chat templates read;
- none: the answer alone.
In a dialogue, reasoning_turns="all" puts each turn's reasoning in that turn, "last" only in the last assistant
turn (the layout of chat templates that drop earlier thinking).

Files are JSONL (one record a line), JSON (an array, one record a line) or Parquet (server/export/parquet.py,
row groups of a thousand records; a path's suffix that contradicts Parquet is refused). Records are streamed from a
read-only connection into temporary files that replace the targets only when every file is complete, so
memory stays flat at any size and a failed export leaves nothing behind (temporary files of exports that
crashed are removed by the next export into the same directory). dataset_info.json is read without following
a symbolic link and replaced, never written through one.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from treedistill.server.export import dpo
from treedistill.server.store.curation import CurationStore, ExportFilter
from treedistill.server.store.dialogues import DialogueStore
from treedistill.server.store.preference import PreferenceStore
from treedistill.server.text.dedup import normalize
from treedistill.server.config import MAX_FILE_NAME_BYTES, MAX_PATH_BYTES
from treedistill.server.errors import InvalidInput
from treedistill.server.export.temps import discard, keep, remove_stale_temps, temp_path
from treedistill.server.models import Project

PREVIEW_TEXT_LIMIT = 300
Format = Literal["alpaca", "sharegpt", "openai", "raw", "dpo"]
Reasoning = Literal["think", "field", "none"]
FileFormat = Literal["jsonl", "json", "parquet"]
SUFFIX_FORMATS: dict[str, FileFormat] = {".json": "json", ".parquet": "parquet"}  # else jsonl


class ExportOptions(ExportFilter):
    format: Format = "alpaca"
    reasoning: Reasoning = "think"
    dpo_style: Literal["llamafactory", "trl"] = "llamafactory"  # format="dpo" only
    reasoning_turns: Literal["all", "last"] = "all"  # dialogues: reasoning in every assistant turn, or the last only
    file_format: FileFormat | None = Field(None, description="Default: from the path's suffix, else jsonl")
    path: str | None = None
    system: str | None = None
    test_ratio: float = Field(0.0, ge=0, lt=1)
    dataset_info: bool = False
    preview: int = Field(3, ge=0, le=20)
    layout: Literal["file", "hf"] = "file"  # hf: a Hugging Face datasets folder (server/export/hf_layout.py)
    license: str | None = None  # the hf layout's dataset card
    description: str | None = None


class ExportedFile(BaseModel):
    path: str
    split: Literal["all", "train", "test"]
    records: int
    bytes: int


class ExportReport(BaseModel):
    project_id: int
    format: Format
    reasoning: Reasoning
    file_format: FileFormat
    path: str = Field(..., description="The data file (the train file when split)")
    record_count: int = Field(..., description="Records written, over all files")
    files: list[ExportedFile]
    seed: int | None = Field(None, description="Shuffle seed used (a split without a seed uses 0)")
    dataset_info_path: str | None = None
    preview: list[dict[str, Any]]
    layout: Literal["file", "hf"] = "file"
    card_path: str | None = Field(None, description="The hf layout's dataset card (README.md)")


# -- where files go -------------------------------------------------------------------------


def project_export_dir(db_path: str | Path, project_id: int) -> Path:
    """Where a project's exports go: <database name>-exports/<project id>/ beside the database (two databases
    in one folder never share an export folder)."""
    db = Path(db_path).resolve()
    return db.parent / f"{db.stem}-exports" / str(project_id)


def default_file_name(project: Project, options: ExportOptions) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", normalize(project.name).encode("ascii", "ignore").decode()).strip("-")
    split = "-eval" if options.split == "eval" else ""
    return f"{slug or f'project-{project.id}'}-{options.format}{split}.{options.file_format or 'jsonl'}"


def confined_path(export_dir: Path, given: str | None, allow_any_path: bool, *, default_name: str = "",
                  what: str = "Export path", elsewhere: str = "write elsewhere") -> Path:
    """`given` (relative to `export_dir`, or absolute; blank: `default_name`) resolved; raises InvalidInput when it
    leaves `export_dir` and the server does not allow any path. Exports and the files they are checked against
    share this rule."""
    given = given.strip() if given and given.strip() else default_name
    _check_path_text(given, what)
    export_dir = export_dir.resolve()
    try:
        path = Path(given).expanduser()
        target = (path if path.is_absolute() else export_dir / path).resolve()
    except (OSError, ValueError) as exc:  # e.g. a home directory that does not exist, a name the system refuses
        raise InvalidInput(f"{what} {given!r} cannot be used: {getattr(exc, 'strerror', None) or exc}. "
                           "Give a file name such as 'train.jsonl'.") from None
    if not allow_any_path and not target.is_relative_to(export_dir):
        raise InvalidInput(
            f"{what} {given!r} is outside this project's export directory {export_dir}. Give a file "
            "name or a relative path inside it (e.g. 'train.jsonl'), or start the server with "
            f"TREEDISTILL_ALLOW_ANY_EXPORT_PATH=1 to {elsewhere}."
        )
    return target


def export_target(export_dir: Path, project: Project, options: ExportOptions, allow_any_path: bool) -> Path:
    """The file to write: inside `export_dir` unless the server allows any path. Raises InvalidInput."""
    if options.split == "eval" and options.test_ratio:
        raise InvalidInput("test_ratio splits the training records; the evaluation records (split='eval') are "
                           "already held out by hold_out. Give test_ratio=0 with split='eval'.")
    if options.dataset_info and options.format == "raw":
        raise InvalidInput("dataset_info describes alpaca, sharegpt and openai files; LLaMA-Factory cannot "
                           "train on the raw format. Choose another format or set dataset_info=false.")
    if options.format == "dpo":
        dpo.check_dpo_options(options.reasoning, options.dpo_style, options.system, options.dataset_info)
    if options.dataset_info and options.reasoning == "field":
        # LLaMA-Factory's dataset_info columns are prompt, query, response, history, system, tools and media
        # (alpaca) or messages with role/content tags (sharegpt): none maps a separate reasoning field, and its
        # converters keep only role and content, so the reasoning would be silently dropped from training.
        raise InvalidInput("LLaMA-Factory's dataset_info.json has no column for a separate reasoning field: it "
                           "would train on the answers without their reasoning. Use reasoning='think' (the "
                           "reasoning inside <think>...</think> before the answer, which LLaMA-Factory's reasoning "
                           "templates read), or dataset_info=false to keep the separate field for another trainer.")
    export_dir = export_dir.resolve()
    target = confined_path(export_dir, options.path, allow_any_path, default_name=default_file_name(project, options))
    if target.is_dir() or target == export_dir:
        raise InvalidInput(f"Export path {str(target)!r} is a directory; give a file name such as 'data.jsonl'.")
    if not target.suffix:
        target = target.with_name(f"{target.name}.{options.file_format or 'jsonl'}")
    _check_suffix(target, options.file_format)
    return target


def _check_path_text(text: str, what: str) -> None:
    """InvalidInput, before the file system sees it, for a path the operating system would refuse as such: one
    with a NUL byte, a name longer than MAX_FILE_NAME_BYTES or a whole longer than MAX_PATH_BYTES (in UTF-8)."""
    if "\x00" in text:
        raise InvalidInput(f"{what} contains a NUL byte (\\u0000), which no file name may hold; remove it.")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidInput(f"{what} is longer than {MAX_PATH_BYTES} bytes; give a shorter path such as "
                           "'train.jsonl'.")
    for name in Path(text).parts:
        if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
            raise InvalidInput(f"{what} has a name of {len(name.encode('utf-8', 'surrogatepass'))} bytes "
                               f"({name[:40]}...); file names may be at most {MAX_FILE_NAME_BYTES} bytes. Give a "
                               "shorter name such as 'train.jsonl'.")


def _check_suffix(target: Path, file_format: FileFormat | None) -> None:
    """Refuse a binary file named as text or the other way round (a '.parquet' file holding JSONL)."""
    implied = SUFFIX_FORMATS.get(target.suffix.lower(), "jsonl")
    if file_format and "parquet" in (implied, file_format) and implied != file_format:
        raise InvalidInput(f"Export path {target.name!r} names a {target.suffix or 'suffix-less'} file but "
                           f"file_format is {file_format!r}; give a path ending in '.{file_format}' or drop "
                           "file_format (it then follows the suffix). Nothing was written.")


def open_record_file(path: Path, file_format: FileFormat) -> RecordFile:
    """The streaming writer of one export file in its file format."""
    if file_format == "parquet":
        from treedistill.server.export.parquet import ParquetRecordFile  # pyarrow is loaded only for Parquet

        return ParquetRecordFile(path)
    return RecordFile(path, file_format)


def _check_parquet_parts(count: int, test_size: int, split: bool) -> None:
    """A Parquet file takes its columns from its records: refuse, before anything is written, a file that
    would have none."""
    if not count:
        raise InvalidInput("No record matches this selection, and a Parquet file needs at least one. Loosen the "
                           "filters (answered_only, confirmed_only, min_rating, min_score, tag_id). Nothing was "
                           "written.")
    if split and not 0 < test_size < count:
        raise InvalidInput(f"test_ratio splits {count} record(s) into {test_size} test and {count - test_size} "
                           "train: both parts need a record. Change test_ratio or the filters. Nothing was written.")


def _split_paths(target: Path, split: bool) -> dict[str, Path]:
    if not split:
        return {"all": target}
    return {part: target.with_name(f"{target.stem}_{part}{target.suffix}") for part in ("train", "test")}


# -- records ----------------------------------------------------------------------------------


def build_record(row: dict[str, Any], options: ExportOptions, project: Project,
                 later_turns: Sequence[dict[str, Any]] = (), multi_turn: bool = False) -> dict[str, Any]:
    """One export record in the options' format and reasoning mode, from a row of CurationStore.export_rows and the
    question's complete later dialogue turns (DialogueStore.complete_later_turns). `multi_turn`: the file holds
    dialogues, so alpaca records carry `history` (empty for a single turn) and raw records `turns`."""
    if options.format == "raw":
        record = {"project": project.name, **row, "confirmed": bool(row["confirmed"]),
                  "question_model": project.question_model.model}
        return {**record, "turns": [_raw_turn(turn) for turn in later_turns]} if multi_turn else record
    if options.format == "dpo":
        return dpo.pair_record(row, options.dpo_style, lambda text, thought: with_reasoning(text, thought, options),
                               options.system)
    exchanges = [(row["question"], row["answer"] or "", row["reasoning"] or ""),
                 *((turn["user_text"], turn["answer"], turn["reasoning"] or "") for turn in later_turns)]
    last = len(exchanges) - 1

    def shows_reasoning(number: int) -> bool:  # "last": the layout of chat templates that drop earlier thinking
        return options.reasoning_turns == "all" or number == last

    def output(number: int) -> str:
        _, answer, reasoning = exchanges[number]
        return with_reasoning(answer, reasoning if shows_reasoning(number) else "", options)

    def field(number: int) -> dict[str, str]:
        return {"reasoning_content": exchanges[number][2]} if options.reasoning == "field" and shows_reasoning(
            number) else {}

    system = options.system
    if options.format == "alpaca":
        record = {"instruction": exchanges[last][0], "input": "", "output": output(last)}
        if system:
            record["system"] = system
        if options.reasoning == "field":
            record["reasoning"] = exchanges[last][2]
        if multi_turn:  # LLaMA-Factory's alpaca `history`: the earlier [instruction, response] pairs, in order
            record["history"] = [[exchanges[number][0], output(number)] for number in range(last)]
        return record
    if options.format == "sharegpt":
        turns = [{"from": "system", "value": system}] if system else []
        for number, (user, _, _) in enumerate(exchanges):
            turns += [{"from": "human", "value": user}, {"from": "gpt", "value": output(number), **field(number)}]
        return {"conversations": turns}
    messages = [{"role": "system", "content": system}] if system else []
    for number, (user, _, _) in enumerate(exchanges):
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": output(number), **field(number)}]
    return {"messages": messages}


def _raw_turn(turn: dict[str, Any]) -> dict[str, Any]:
    return {"number": turn["number"], "user": turn["user_text"], "user_model": turn["user_model"],
            "answer": turn["answer"], "reasoning": turn["reasoning"] or "",
            "reasoning_source": turn["reasoning_source"], "answer_model": turn["model"],
            "input_tokens": turn["input_tokens"], "output_tokens": turn["output_tokens"],
            "answered_at": turn["answered_at"]}


def with_reasoning(answer: str, reasoning: str, options: ExportOptions) -> str:
    """A response as trained on: with reasoning="think", its reasoning in <think>...</think> before it."""
    return f"<think>\n{reasoning}\n</think>\n\n{answer}" if options.reasoning == "think" and reasoning else answer


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > PREVIEW_TEXT_LIMIT:
        return value[:PREVIEW_TEXT_LIMIT] + "..."
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value


class RecordFile:
    """A JSONL or JSON file written record by record into a temporary file; `commit` moves it into place."""

    def __init__(self, path: Path, file_format: FileFormat):
        self.path = path
        self.json_array = file_format == "json"
        self.records = 0
        self.temp = temp_path(path)
        self._file = None

    def __enter__(self) -> RecordFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.temp.open("x", encoding="utf-8")
            if self.json_array:
                self._file.write("[")
        except BaseException:
            self.discard()
            raise
        return self

    def write(self, record: dict[str, Any]) -> None:
        prefix = ("\n" if self.records == 0 else ",\n") if self.json_array else ""
        self._file.write(prefix + json.dumps(record, ensure_ascii=False) + ("" if self.json_array else "\n"))
        self.records += 1

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self._complete()
        except BaseException:
            self.discard()
            raise
        if exc_type is not None:
            self.discard()

    def _complete(self) -> None:
        """Finish the file after its last record (a failure here discards it)."""
        if self.json_array:
            self._file.write("\n]\n")
        self._file.close()

    @property
    def size(self) -> int:
        return self.temp.stat().st_size

    def commit(self) -> None:
        keep(self.temp, self.path)

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        discard(self.temp)


# -- LLaMA-Factory ----------------------------------------------------------------------------


def dataset_info_entry(file_name: str, options: ExportOptions, multi_turn: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's description of one exported file (its data/dataset_info.json format); `multi_turn`: the
    alpaca file's records carry the earlier turns in `history`."""
    if options.format == "dpo":
        return dpo.dataset_info_entry(file_name, options.dpo_style, options.system)
    if options.format == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "response": "output"}
        if options.system:
            columns["system"] = "system"
        if multi_turn:
            columns["history"] = "history"
        return {"file_name": file_name, "formatting": "alpaca", "columns": columns}
    if options.format == "sharegpt":
        return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                         "system_tag": "system"}}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                     "system_tag": "system"}}


def _read_dataset_info(path: Path) -> dict[str, Any]:
    """The existing dataset_info.json beside the export, read without following a symbolic link (one could
    point anywhere on the server; its content would then be copied into the export directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise InvalidInput(f"{path} is a symbolic link; treedistill neither reads nor writes through links. "
                               "Replace it with a regular file, remove it, or set dataset_info=false.") from None
        raise InvalidInput(f"{path} cannot be read ({exc}); fix or remove it, or set dataset_info=false.") from None
    try:
        with os.fdopen(fd, encoding="utf-8") as file:
            existing = json.loads(file.read())
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path} exists but is not readable JSON ({exc}); fix or remove it, or set "
                           "dataset_info=false.") from None
    if not isinstance(existing, dict):
        raise InvalidInput(f"{path} exists but is not a JSON object; fix or remove it, or set dataset_info=false.")
    return existing


def _write_dataset_info(path: Path, info: dict[str, Any]) -> None:
    """Write through a temporary file and os.replace, which replaces a link put there meanwhile instead of
    writing to where it points."""
    temp = temp_path(path)
    try:
        with temp.open("x", encoding="utf-8") as file:
            file.write(json.dumps(info, ensure_ascii=False, indent=2) + "\n")
        keep(temp, path)
    finally:
        discard(temp)


# -- the export -------------------------------------------------------------------------------


def write_export(db_path: str | Path, project: Project, options: ExportOptions, target: Path, *,
                 paths: dict[str, Path] | None = None) -> ExportReport:
    """Stream the selected records into the target file(s); blocking, meant for a worker thread.

    Every file is written to a temporary file first; they all replace their targets only when all are
    complete. A failure removes them; a file system error is reported as InvalidInput. `paths` names the
    files ({"all": ...} or {"test": ..., "train": ...}) instead of the ones derived from `target`."""
    try:
        return _write_export(db_path, project, options, target, paths)
    except OSError as exc:
        raise InvalidInput(f"Could not write the export to {target.parent}: {exc.strerror or exc} "
                           f"({exc.filename or target}). Nothing was written.") from None


def _write_export(db_path: str | Path, project: Project, options: ExportOptions, target: Path,
                  paths: dict[str, Path] | None) -> ExportReport:
    file_format: FileFormat = options.file_format or SUFFIX_FORMATS.get(target.suffix.lower(), "jsonl")
    split = options.test_ratio > 0
    seed = 0 if split and options.seed is None else options.seed
    selection = ExportFilter(**{**options.model_dump(include=set(ExportFilter.model_fields)), "seed": seed})
    paths = paths or _split_paths(target, split)
    info_path = target.with_name("dataset_info.json") if options.dataset_info else None
    remove_stale_temps(target.parent)
    info = _read_dataset_info(info_path) if info_path else {}
    reader = CurationStore.open_reader(db_path)
    source = PreferenceStore(reader.store) if options.format == "dpo" else reader  # pairs, or one record per answer
    dialogues = DialogueStore(reader.store)
    written: list[RecordFile] = []
    try:
        multi_turn = options.format != "dpo" and dialogues.has_dialogues(project.id)
        count = source.export_count(project.id, selection)
        test_size = round(count * options.test_ratio) if split else 0
        if file_format == "parquet":
            _check_parquet_parts(count, test_size, split)
        rows = source.export_rows(project.id, selection)
        preview: list[dict[str, Any]] = []
        for part in ("test", "train") if split else ("all",):
            with open_record_file(paths[part], file_format) as out:
                written.append(out)
                for row in islice(rows, test_size if part == "test" else None):
                    later = dialogues.complete_later_turns(row["question_id"]) if multi_turn else []
                    record = build_record(row, options, project, later, multi_turn)
                    out.write(record)
                    if part != "test" and len(preview) < options.preview:
                        preview.append(_shorten(record))
        files = [ExportedFile(path=str(out.path), split=part, records=out.records, bytes=out.size)
                 for part, out in zip(("test", "train") if split else ("all",), written)]
        for out in written:
            if out.path.is_dir():
                raise InvalidInput(f"{out.path} is a directory; give another path. Nothing was written.")
        for out in written:
            out.commit()
    finally:
        reader.close()
        for out in written:
            out.discard()
    if info_path:
        for path in paths.values():
            info[path.stem] = dataset_info_entry(path.name, options, multi_turn)
        _write_dataset_info(info_path, info)
    main = files[-1]
    return ExportReport(
        project_id=project.id, format=options.format, reasoning=options.reasoning, file_format=file_format,
        path=main.path, record_count=sum(f.records for f in files), files=files[::-1], seed=seed,
        dataset_info_path=str(info_path) if info_path else None, preview=preview,
    )
