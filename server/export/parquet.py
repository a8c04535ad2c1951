"""Parquet export files: records streamed in row groups of PARQUET_CHUNK, through pyarrow.

The column types come from the first row group; a column that is null throughout it takes its type from
NULLABLE_TYPES (raw's optional review fields) or is a string, so a later row group with a value never
changes the file's schema. pyarrow is imported here only, when a Parquet file is written, so the server
starts without it.
"""

from __future__ import annotations

from typing import Any

from treedistill.server.errors import InvalidInput
from treedistill.server.export.writer import RecordFile

PARQUET_CHUNK = 1_000  # records per row group: memory stays flat at any size
COMPRESSION = "zstd"  # read by pyarrow, datasets, DuckDB and the Hub's viewer
NULLABLE_INTEGERS = ("rating", "score", "input_tokens", "output_tokens", "question_id", "tag_id")


def _settled(pa: Any, schema: Any) -> Any:
    """The schema with every null-typed field (top level or nested) given a real type."""

    def settle(field: Any) -> Any:
        kind = field.type
        if pa.types.is_null(kind):
            return field.with_type(pa.int64() if field.name in NULLABLE_INTEGERS else pa.string())
        if pa.types.is_struct(kind):
            return field.with_type(pa.struct([settle(kind.field(i)) for i in range(kind.num_fields)]))
        if pa.types.is_list(kind):
            return field.with_type(pa.list_(settle(kind.value_field)))
        return field

    return pa.schema([settle(field) for field in schema])


class ParquetRecordFile(RecordFile):
    """A Parquet file written a row group at a time into a temporary file; `commit` moves it into place."""

    def __init__(self, path: Any, file_format: str = "parquet"):
        super().__init__(path, file_format)
        self.json_array = False
        self._chunk: list[dict[str, Any]] = []
        self._writer = None

    def __enter__(self) -> ParquetRecordFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.temp.open("xb").close()  # claims the name as the text writer does; pyarrow then writes it
        except BaseException:
            self.discard()
            raise
        return self

    def write(self, record: dict[str, Any]) -> None:
        self._chunk.append(record)
        self.records += 1
        if len(self._chunk) >= PARQUET_CHUNK:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            schema = _settled(pa, pa.Table.from_pylist(self._chunk).schema)
            # No dictionary encoding: record texts are nearly all distinct, and building dictionaries for them
            # doubled the write time for the same file size (zstd still packs the few repeated short values).
            self._writer = pq.ParquetWriter(self.temp, schema, compression=COMPRESSION, use_dictionary=False)
        self._writer.write_table(pa.Table.from_pylist(self._chunk, schema=self._writer.schema))
        self._chunk = []

    def _complete(self) -> None:
        if not self.records:
            raise InvalidInput(f"No record to write to {self.path.name}: a Parquet file takes its columns "
                               "from its records. Loosen the filters or the split. Nothing was written.")
        if self._chunk:
            self._flush()
        self._writer.close()

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; its close error changes nothing
                pass
            self._writer = None
        super().discard()
