"""Parquet columns, read and written with pyarrow, which is imported only when a Parquet file is used.

pyarrow comes with the ``[train]`` extra; the serving install reads every other format without it.  Parquet has no
lines: errors name the 0-based row (``"<file>: row <i>: <problem>"``) where there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from distilrank.atomic import atomic_path
from distilrank.errors import DataError, DistilRankError


def pyarrow_modules(path: str | Path) -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet)``, imported on first use.

    Raises:
        DistilRankError: naming ``path``, pyarrow and the ``[train]`` extra when pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DistilRankError(f"{path}: Parquet files need pyarrow, which is not installed ({exc}); "
                              "pip install 'distilrank[train]' (or pip install pyarrow)") from None
    return pa, pq


def parquet_table(path: str | Path, wanted: Sequence[str | None]) -> tuple[list[str], Callable[[], Iterator[tuple[int, dict]]]]:
    """The column names of a Parquet file, and a function iterating ``(row index, {column: value})`` over the
    ``wanted`` columns that exist (``None`` entries and duplicates are ignored).

    Only the schema is read up front; the rows are read when the function is called.

    Raises:
        DataError: ``"<file>: cannot read Parquet: ..."`` for a file pyarrow cannot read.
        DistilRankError: pyarrow is not installed.
    """
    path = Path(path)
    _, pq = pyarrow_modules(path)
    try:
        columns = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(path, None, f"cannot read Parquet: {exc}") from None

    def rows() -> Iterator[tuple[int, dict]]:
        names = [c for c in dict.fromkeys(wanted) if c is not None and c in columns]
        try:
            table = pq.read_table(path, columns=names)
        except Exception as exc:
            raise DataError(path, None, f"cannot read Parquet: {exc}") from None
        data = {name: table.column(name).to_pylist() for name in names}
        for i in range(table.num_rows):
            yield i, {name: data[name][i] for name in names}

    return columns, rows


def write_parquet(path: str | Path, columns: Mapping[str, tuple[Sequence[Any], str]]) -> None:
    """Atomically write ``{name: (values, pyarrow type alias such as "string" or "float32")}`` as one Parquet table.

    Raises:
        DistilRankError: pyarrow is not installed (``path`` is then not touched).
    """
    path = Path(path)
    pa, pq = pyarrow_modules(path)
    table = pa.table({name: pa.array(values, pa.type_for_alias(kind)) for name, (values, kind) in columns.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
