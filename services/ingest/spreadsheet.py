"""A bank's spreadsheet export (.xlsx, as many European banks offer instead of CSV), read as CSV
text so that one set of rules reads both: the header found by its date column, columns by
name, dates by format, the decimal mark from the amounts.

Cells keep their meaning on the way: a date cell is an ISO date (with its time where it has
one), a number is written with a decimal point and at most six decimals (floating point's
"37.800000000000004" is 37.8), and text stays text. Only the first sheet is read.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, time
from typing import Any

from services.ingest.mapping import ImportErrors, RowError

ZIP_MAGIC = b"PK\x03\x04"
# A few megabytes of export unpack to some tens; more is a zip bomb, not a bank statement.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024


def is_xlsx(filename: str, data: bytes) -> bool:
    return filename.lower().endswith((".xlsx", ".xlsm")) or (
        data.startswith(ZIP_MAGIC) and b"xl/" in data[:4096]
    )


def xlsx_to_csv(data: bytes, max_rows: int) -> str:
    """The first sheet's rows as CSV text, at most ``max_rows`` of them (the CSV reader then
    says the file has too many); ``ImportErrors`` for a file that is no readable workbook or
    unpacks to more than ``MAX_UNPACKED_BYTES``."""
    import openpyxl  # a few hundred milliseconds to import: only when a spreadsheet comes

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise _refused(f"unpacks to {unpacked:,} bytes, more than a statement would")
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ImportErrors:
        raise
    except Exception as exc:  # a damaged or foreign file: zipfile, XML and openpyxl errors
        raise _refused(f"not readable as an .xlsx workbook ({type(exc).__name__})") from None
    try:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for index, row in enumerate(workbook.worksheets[0].iter_rows(values_only=True)):
            if index > max_rows:
                break
            writer.writerow([cell_text(value) for value in row])
        return out.getvalue()
    finally:
        workbook.close()


def cell_text(value: Any) -> str:
    """One cell as the CSV reader reads it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def _refused(message: str) -> ImportErrors:
    return ImportErrors([RowError(1, "file", message)])
