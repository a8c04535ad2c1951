"""The Hugging Face datasets layout: a folder that `datasets.load_dataset(folder)` and the Hub read as is.

    <folder>/README.md                          the dataset card (server/export/card.py)
    <folder>/data/train-00000-of-00001.parquet  the records (and test-00000-of-00001.parquet with test_ratio)

The folder is built under a temporary name beside its target (server/export/temps.py) and swapped into place only
when complete (a failed export leaves the previous folder as it was; one of a crashed export is removed by the next). An existing folder is replaced only when it is a layout
(it has a README.md); an unrelated folder is never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from treedistill.server.errors import InvalidInput
from treedistill.server.export.card import (CardFacts, SplitFile, check_card_text, check_no_secrets,
                                            generation_facts, render_card, yaml_features)
from treedistill.server.export.temps import discard, keep, remove_stale_temps, temp_path
from treedistill.server.export.writer import (ExportedFile, ExportFilter, ExportOptions, ExportReport, confined_path,
                                              default_file_name, write_export)
from treedistill.server.models import Project
from treedistill.server.store.card_facts import CardFactsQuery
from treedistill.server.store.catalog import Store

CARD = "README.md"
DATA = "data"


def split_file(split: str) -> str:
    return f"{DATA}/{split}-00000-of-00001.parquet"


def layout_files(folder: Path) -> list[str]:
    """The files of a layout folder, relative to it: the card and the Parquet files under data/ (what a push
    uploads; anything else in the folder is not part of the dataset)."""
    data = sorted(path.relative_to(folder).as_posix() for path in (folder / DATA).glob("*.parquet") if path.is_file())
    return [CARD, *data] if (folder / CARD).is_file() and data else []


def layout_folder(export_dir: Path, project: Project, options: ExportOptions, allow_any_path: bool) -> Path:
    """The layout's folder: inside `export_dir` (default '<project>-<format>-hf') unless any path is allowed."""
    export_dir = export_dir.resolve()
    default = default_file_name(project, options).rsplit(".", 1)[0] + "-hf"
    path = options.path
    folder = confined_path(export_dir, path, allow_any_path, default_name=default)
    if folder == export_dir or folder.is_file():
        raise InvalidInput(f"The hf layout needs a folder name, e.g. 'sports-hf'; {path!r} is "
                           f"{'the export directory itself' if folder == export_dir else 'a file'}.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CARD).is_file():
        raise InvalidInput(f"{folder.name!r} is a folder that holds something other than a dataset layout (no "
                           "README.md); give a new folder name. Nothing was written.")
    return folder


def write_hf_layout(db_path: str | Path, project: Project, options: ExportOptions, folder: Path,
                    environ: Mapping[str, str]) -> ExportReport:
    """Write the layout into `folder`; blocking, meant for a worker thread. Raises InvalidInput."""
    check_card_text(options.license, options.description)
    remove_stale_temps(folder.parent)
    staging = temp_path(folder)
    try:
        staging.mkdir(parents=True)
        parts = ("test", "train") if options.test_ratio > 0 else ("all",)
        paths = {part: staging / split_file("train" if part == "all" else part) for part in parts}
        file_options = options.model_copy(update={"file_format": "parquet", "dataset_info": False})
        report = write_export(db_path, project, file_options, paths[parts[-1]], paths=paths)
        splits = [SplitFile(split="train" if f.split == "all" else f.split,
                            path_in_repo=Path(f.path).relative_to(staging).as_posix(), records=f.records,
                            bytes=f.bytes) for f in report.files]
        text = render_card(_facts(db_path, project, options, splits, paths[parts[-1]]))
        check_no_secrets(text, environ, _local_paths(db_path, folder))
        (staging / CARD).write_text(text, encoding="utf-8")
        _swap_into_place(staging, folder)
    except OSError as exc:
        raise InvalidInput(f"Could not write the dataset layout to {folder}: {exc.strerror or exc}. Nothing was "
                           "written.") from None
    finally:
        discard(staging)
    files = [ExportedFile(path=str(folder / split.path_in_repo), split=split.split, records=split.records,
                          bytes=split.bytes) for split in splits]
    return report.model_copy(update={"path": str(folder), "files": files, "layout": "hf", "file_format": "parquet",
                                     "card_path": str(folder / CARD)})


def _facts(db_path: str | Path, project: Project, options: ExportOptions, splits: list[SplitFile],
           train: Path) -> CardFacts:
    import pyarrow.parquet as pq

    reader = Store.reader(db_path)
    try:
        query = CardFactsQuery(reader)
        tree, totals = query.tree(project.id), query.totals(project.id)
    finally:
        reader.close()
    filters = options.model_dump(include=set(ExportFilter.model_fields), exclude_defaults=True)
    if options.test_ratio:
        filters["test_ratio"] = options.test_ratio
    return CardFacts(
        project=project, license=options.license or "other", description=options.description,
        format=options.format, reasoning=options.reasoning, system=options.system, filters=filters, splits=splits,
        features=yaml_features(pq.read_schema(train)), tree=tree, totals=totals,
        generation=generation_facts(project, totals),
        exported_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def _local_paths(db_path: str | Path, folder: Path) -> list[str]:
    """Paths of this machine a card must not show: the database's folder, the export folder, the home folder."""
    home = Path.home()
    paths = [str(Path(db_path).resolve().parent), str(folder.parent)]
    return paths + ([str(home)] if len(home.parts) > 2 else [])


def _swap_into_place(staging: Path, folder: Path) -> None:
    """Replace `folder` by `staging`: the old layout is moved aside, the new one renamed in, the old removed."""
    if not folder.exists():
        keep(staging, folder)
        return
    old = temp_path(folder.with_name(folder.name + ".old"))
    os.replace(folder, old)
    try:
        keep(staging, folder)
    except BaseException:
        os.replace(old, folder)
        discard(old)
        raise
    discard(old)
