"""Reading the QA inputs (paths, astropy Tables or pandas DataFrames) and checking their columns."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.io.registry import IORegistryError
from numpy.typing import NDArray

from opendrp.errors import ConfigurationError

__all__ = ["TableInput", "as_bool", "as_float", "load_table", "require_columns"]

type TableInput = str | os.PathLike[str] | pd.DataFrame | Any
"""A path (Parquet, or any format astropy reads: FITS, ECSV), a pandas DataFrame or an astropy Table."""


def load_table(table: TableInput, *, role: str) -> tuple[pd.DataFrame, str]:
    """Return the table as a DataFrame and a description of where it came from.

    Parameters
    ----------
    table : path, `pandas.DataFrame` or `astropy.table.Table`
        The input.
    role : `str`
        What the table is ("object table", "truth catalog", ...), for error messages.

    Returns
    -------
    df : `pandas.DataFrame`
    label : `str`
        The path, or "in-memory <type>" for objects.
    """
    if isinstance(table, str | os.PathLike):
        path = Path(table)
        if not path.is_file():
            raise ConfigurationError(f"{role} file not found", where=str(path), fix="give an existing file")
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                return pd.read_parquet(path), str(path)
            from astropy.table import Table

            return _astropy_to_pandas(Table.read(path)), str(path)
        except (OSError, ValueError, IORegistryError) as exc:
            raise ConfigurationError(
                f"cannot read {role}: {exc}", where=str(path), fix="give a Parquet, FITS or ECSV table"
            ) from exc
    if isinstance(table, pd.DataFrame):
        return table, f"in-memory DataFrame ({len(table)} rows)"
    if hasattr(table, "to_pandas") and hasattr(table, "colnames"):
        return _astropy_to_pandas(table), f"in-memory astropy Table ({len(table)} rows)"
    raise ConfigurationError(
        f"{role} must be a path, a pandas DataFrame or an astropy Table, got {type(table).__name__}"
    )


def _astropy_to_pandas(table: Any) -> pd.DataFrame:
    # Multidimensional columns cannot go to pandas and are not used by QA: drop them.
    names = [n for n in table.colnames if len(table[n].shape) <= 1]
    return table[names].to_pandas()


def require_columns(
    df: pd.DataFrame, columns: Iterable[str], *, role: str, label: str, expected: str
) -> None:
    """Raise `ConfigurationError` naming the first missing columns.

    Parameters
    ----------
    df : `pandas.DataFrame`
        The table.
    columns : iterable of `str`
        Required column names.
    role, label : `str`
        What the table is and where it came from.
    expected : `str`
        Description of the expected content, appended to the message.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ConfigurationError(
            f"{role} lacks column(s) {names}; expected {expected}",
            where=label,
            fix="check the input file or the bands requested",
        )


def as_float(df: pd.DataFrame, column: str) -> NDArray[np.float64]:
    """Column as float64, missing values as NaN."""
    return np.asarray(pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def as_bool(df: pd.DataFrame, column: str) -> NDArray[np.bool_]:
    """Column as bool, missing values as False."""
    col = df[column]
    if col.dtype == bool:
        return col.to_numpy()
    return np.asarray(col.astype("boolean").fillna(False).to_numpy(dtype=bool))
