"""Subscribers in and out of CSV: import with a per-line report, export that imports back identically.

Columns: email,name,locale,timezone,rubrics,status,created_at. A header line is required, its order is
free, only ``email`` is mandatory. An empty cell in locale, timezone, status or created_at means "not
given" (an existing subscriber keeps theirs, a new one gets the default); an empty name or rubrics cell
is a value (no name; every rubric). Line numbers are physical lines of the file, the header being line
1; a row whose quoted cell holds a line break is reported at the line where it starts.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from digest.errors import DigestError

from .store import Store, UTC, as_utc
from .validate import (
    Fields,
    InvalidSubscriber,
    check_locale,
    check_rubrics,
    check_status,
    check_timezone,
    clean_name,
    normalise_email,
    split_rubrics,
)

COLUMNS = ("email", "name", "locale", "timezone", "rubrics", "status", "created_at")
# Headers written by French-speaking staff or other tools, read as ours.
ALIASES = {"e-mail": "email", "mail": "email", "courriel": "email", "nom": "name", "langue": "locale", "rubriques": "rubrics", "statut": "status"}
EXCEL_HINT = "save it from your spreadsheet as “CSV UTF-8”"


class CsvError(DigestError):
    """The file as a whole cannot be imported (nothing was imported)."""

    exit_code = 2


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): rows not imported
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): imported, with a remark


def import_csv(
    store: Store,
    path_or_file: str | Path | IO[str] | IO[bytes],
    known_rubrics: set[str] | None = None,
    default_locale: str = "fr",
    default_timezone: str = "UTC",
) -> ImportReport:
    """Check every row, then import the good ones in one transaction; the report names each bad row."""
    name, text = _read(path_or_file)
    report = ImportReport()
    lines: list[int] = []
    rows: list[Fields] = []
    for line, fields in _checked_rows(name, text, known_rubrics, report):
        lines.append(line)
        rows.append(fields)
    done = store.merge(rows, default_locale, default_timezone)  # one transaction: all good rows or none
    for line, fields, upserted in zip(lines, rows, done):
        setattr(report, upserted.outcome, getattr(report, upserted.outcome) + 1)
        if upserted.kept_status:
            report.warnings.append((line, f"{fields.email} stays {upserted.kept_status}: "
                                          "only the subscriber can subscribe again"))
    report.errors.sort()
    return report


def export_csv(store: Store, file: IO[str], status: str | None = None) -> int:
    """Write subscribers in id order with every column; returns how many rows were written."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for s in store.iter_subscribers(status=status):
        writer.writerow((s.email, s.name, s.locale, s.timezone, ";".join(sorted(s.rubrics)), s.status, iso_utc(s.created_at)))
        count += 1
    return count


def iso_utc(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# -- reading the file ---------------------------------------------------------------------------


def _read(path_or_file: str | Path | IO[str] | IO[bytes]) -> tuple[str, str]:
    """The file's name for messages and its text, from UTF-8 with or without a BOM."""
    if isinstance(path_or_file, (str, Path)):
        name = str(path_or_file)
        try:
            data: str | bytes = Path(path_or_file).read_bytes()
        except OSError as exc:
            raise CsvError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    else:
        name = str(getattr(path_or_file, "name", "<file>"))
        data = path_or_file.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise CsvError(f"{name}: not UTF-8 (line {line} has the byte 0x{data[exc.start]:02x})", EXCEL_HINT) from None
    return name, data.removeprefix("\ufeff")


def _delimiter(header: str) -> str:
    """Excel writes ';' where the decimal mark is a comma (French locales): count both in the header."""
    return ";" if header.count(";") > header.count(",") else ","


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(starting physical line, cells) for each record, blank lines skipped."""
    header = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(header))
    start = 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield start, cells
        start = reader.line_num + 1


def _columns(name: str, line: int, header: list[str]) -> list[str | None]:
    """Each header cell's column name, None for columns we ignore."""
    columns: list[str | None] = []
    for cell in header:
        key = cell.strip().lower().replace(" ", "_")
        key = ALIASES.get(key, key)
        if key in columns:
            raise CsvError(f"{name}: line {line}: the column {cell.strip()!r} appears twice")
        columns.append(key if key in COLUMNS else None)
    if "email" not in columns:
        if any("@" in cell for cell in header):
            raise CsvError(f"{name}: line {line} is an address, not a header",
                           f"add a first line naming the columns, e.g. {','.join(COLUMNS)}")
        raise CsvError(f"{name}: no email column in the header (line {line})", f"name the columns: {','.join(COLUMNS)}")
    return columns


def _checked_rows(name: str, text: str, known: set[str] | None, report: ImportReport) -> Iterator[tuple[int, Fields]]:
    try:
        records = list(_records(text))
    except csv.Error as exc:
        raise CsvError(f"{name}: not a CSV file: {exc}") from None
    if not records:
        raise CsvError(f"{name}: empty file", f"the first line names the columns: {','.join(COLUMNS)}")
    (header_line, header), body = records[0], records[1:]
    columns = _columns(name, header_line, header)
    ignored = [cell.strip() for cell, col in zip(header, columns) if col is None and cell.strip()]
    if ignored:
        report.warnings.append((header_line, f"column(s) ignored: {', '.join(ignored)}"))
    first_seen: dict[str, int] = {}
    for line, cells in body:
        try:
            row = _row(cells, columns, known)
        except InvalidSubscriber as exc:
            report.errors.append((line, str(exc)))
            continue
        # Case-blind here: Amine@ and amine@ reach the same mailbox, and one import must not send twice.
        key = row.email.lower()
        if key in first_seen:
            report.errors.append((line, f"duplicate address {row.email} (first on line {first_seen[key]})"))
            continue
        first_seen[key] = line
        yield line, row


def _row(cells: list[str], columns: list[str | None], known: set[str] | None) -> Fields:
    """One record checked field by field; every problem in it named at once."""
    if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
        raise InvalidSubscriber(f"{len(cells)} cells but the header names {len(columns)} columns")
    values = {col: cell.strip(" \t") for col, cell in zip(columns, cells) if col is not None}
    problems: list[str] = []
    fields: dict[str, Any] = {}

    def check(column: str, parse: Any) -> None:
        if column not in columns:
            return
        try:
            fields[column] = parse(values.get(column, ""))
        except InvalidSubscriber as exc:
            problems.append(str(exc))

    email = ""
    try:
        email = normalise_email(values.get("email", ""))
    except InvalidSubscriber as exc:
        problems.append(str(exc))
    check("name", clean_name)
    check("locale", lambda v: check_locale(v) if v else None)
    check("timezone", lambda v: check_timezone(v) if v else None)
    check("rubrics", lambda v: check_rubrics(split_rubrics(v), known))
    check("status", lambda v: check_status(v) if v else None)
    check("created_at", lambda v: _moment(v) if v else None)
    if problems:
        raise InvalidSubscriber("; ".join(problems))
    return Fields(email=email, **fields)


def _moment(value: str) -> datetime:
    """ISO 8601; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSubscriber(f"invalid created_at {value!r}", "write it as ISO 8601, e.g. 2025-03-14T08:30:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
