"""Subscribers in and out of CSV: import with a per-line report, export that imports back identically.

Columns: email,name,locale,timezone,rubrics,status,created_at,delivery_time,cadence,weekday. A header line
is required, its order is free, only ``email`` is mandatory. An empty cell in locale, timezone, status,
created_at, delivery_time, cadence or weekday means "not given" (an existing subscriber keeps theirs, a new
one gets the default: for delivery_time, the newsletter's hour); an empty name or rubrics cell is a value.
delivery_time is the hour the reader wants the edition where they live ("07:30") or "asap"; cadence daily or
weekly; weekday a day's full name in English or French (given without a cadence: weekly). Line numbers are
physical lines of the file, the header being line 1; a row whose quoted cell holds a line break is reported at
the line where it starts.

A file may come from anyone and be of any size: the import streams it (one line, one record, one page
of rows at a time), keeps the first ERRORS_KEPT bad rows and counts the rest, and a cell or a line too
long for the limits below is a bad row. Export writes a cell that a spreadsheet would run as a formula
with a leading apostrophe, which import takes off again (``neutralise`` and ``restore``).
"""
from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, cast

from digest.core.database import bulk_cache
from digest.core.errors import CsvError, InvalidSubscriber
from subscribers.consent import Origin
from subscribers.csvrows import COLUMNS, FORMULA_STARTS, Header, RowChecker, header, neutralise, restore
from subscribers.merging import FirstLines
from subscribers.store import Store, as_utc
from subscribers.validate import Fields, weekday_name

__all__ = ["COLUMNS", "FORMULA_STARTS", "ImportReport", "export_csv", "export_history", "import_csv", "iso_utc",
           "neutralise", "restore"]

HISTORY_COLUMNS = ("email", "at", "event", "channel", "source", "wording", "network", "user_agent", "detail")
EXCEL_HINT = "save it from your spreadsheet as “CSV UTF-8”"
ERRORS_KEPT = 100  # bad rows (and warnings) kept with their line for the report; the rest are counted
LINE_MAX = 1024 * 1024  # characters in a physical line: seven cells at csv's field limit fit, and 80,000 header names
REASON_MAX = 400  # characters of a reason kept in the report
PAGE = 2000  # rows per page: one lookup of their addresses, one executemany per table


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): the first bad rows, not imported
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): the first rows imported with a remark
    bad: int = 0  # every bad row, those past ``errors`` too
    warned: int = 0  # every warning, those past ``warnings`` too

    def reject(self, line: int, reason: str) -> None:
        self.bad += 1
        _keep(self.errors, line, reason)

    def remark(self, line: int, reason: str) -> None:
        self.warned += 1
        _keep(self.warnings, line, reason)

    def finish(self) -> None:
        """The rows kept, in line order (while importing: a heap of the highest line first)."""
        self.errors = sorted((-line, reason) for line, reason in self.errors)
        self.warnings = sorted((-line, reason) for line, reason in self.warnings)


def _keep(kept: list[tuple[int, str]], line: int, reason: str) -> None:
    """Keep the ERRORS_KEPT lowest lines, whatever order they come in (a page's duplicates and erased
    addresses are found after its other bad rows): a heap on the negated line."""
    if len(kept) < ERRORS_KEPT:
        heapq.heappush(kept, (-line, _cut(reason)))
    elif -kept[0][0] > line:
        heapq.heapreplace(kept, (-line, _cut(reason)))


def _cut(reason: str) -> str:
    # A reason quotes the cell: one of 100,000 characters is not worth printing whole.
    return reason if len(reason) <= REASON_MAX else reason[:REASON_MAX] + "…"


def import_csv(
    store: Store,
    path_or_file: str | Path | IO[str] | IO[bytes],
    known_rubrics: set[str] | None = None,
    default_locale: str = "fr",
    default_timezone: str = "UTC",
    by: Origin | None = None,
) -> ImportReport:
    """Check each row as the file streams in and merge the good ones a page at a time, all in one
    transaction: all good rows or none (a file that cannot be read to its end imports nothing). Each
    row created or changed is on the consent record as imported `by` (default: an import of the file).
    A row whose reader asked to be erased is a bad row: never added back silently; so is an address
    met before in the file (case-blind: Amine@ and amine@ reach the same mailbox, one import must not
    send twice). Memory stays flat: a page of rows, the first bad rows, and caches of bounded size."""
    report = ImportReport()
    with _opened(path_or_file) as (name, lines), store.engine.begin() as conn, bulk_cache(conn):
        tx, first_lines = store.using(conn), FirstLines(conn)
        origin = by or Origin("import", f"import {name}")
        rows = _checked_rows(name, lines, known_rubrics, report)
        while page := list(islice(rows, PAGE)):
            page, again = first_lines.unique(page)
            for line, email, first in again:
                report.reject(line, f"duplicate address {email} (first on line {first})")
            done = tx.merge([fields for _, fields in page], default_locale, default_timezone, origin)
            for (line, fields), upserted in zip(page, done):
                if upserted.outcome == "erased":
                    report.reject(line, f"{fields.email} was erased at the reader's request: not imported "
                                        "(only they can subscribe again, through the sign-up form)")
                    continue
                setattr(report, upserted.outcome, getattr(report, upserted.outcome) + 1)
                if upserted.kept_status:
                    report.remark(line, f"{fields.email} stays {upserted.kept_status}: "
                                        "only the subscriber can subscribe again")
        first_lines.drop()
    report.finish()
    return report


def export_csv(store: Store, file: IO[str], status: str | None = None) -> int:
    """Write subscribers in id order with every column; returns how many rows were written. Without a
    status, pending sign-ups are left out: they have not consented yet, and import refuses them."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for s in store.iter_subscribers(status=status):
        if status is None and s.status == "pending":
            continue
        row = (s.email, s.name, s.locale, s.timezone, ";".join(sorted(s.rubrics)), s.status, iso_utc(s.created_at),
               s.delivery_time or "", s.cadence, weekday_name(s.weekday))
        writer.writerow([neutralise(cell) for cell in row])
        count += 1
    return count


def iso_utc(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# -- reading the file ---------------------------------------------------------------------------


class _LongLine(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Lines:
    """The physical lines of a text stream, numbered, for csv.reader: each at most LINE_MAX characters
    (a longer one is read past in pieces and raised as _LongLine) and checked as UTF-8, so that a byte
    that is not names its line. ``peek`` gives the first line without taking it."""

    def __init__(self, name: str, stream: IO[str]) -> None:
        self.name = name
        self.number = 0  # lines taken so far
        self._stream = stream
        self._ahead: str | None = None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._ahead is not None:
            line, self._ahead = self._ahead, None
        else:
            line = self._read()
        if not line:
            raise StopIteration
        self.number += 1
        return line

    def peek(self) -> str:
        if self._ahead is None:
            self._ahead = self._read()
        return self._ahead

    def _read(self) -> str:
        line = self._stream.readline(LINE_MAX)
        if self.number == 0:
            line = line.removeprefix("\ufeff")
        if len(line) >= LINE_MAX and not line.endswith(("\n", "\r")):
            while (rest := self._stream.readline(LINE_MAX)) and not rest.endswith(("\n", "\r")):
                pass
            self.number += 1  # the long line is taken: the next record starts after it
            raise _LongLine(self.number)
        if not line.isascii():
            _check_utf8(self.name, self.number + 1, line)
        return line


def _check_utf8(name: str, number: int, line: str) -> None:
    """A byte that was not UTF-8 came through as a lone surrogate (errors="surrogateescape")."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(line[exc.start])
        what = f"has the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "has a lone surrogate"
        raise CsvError(f"{name}: not UTF-8 (line {number} {what})", EXCEL_HINT) from None


@contextmanager
def _opened(path_or_file: str | Path | IO[str] | IO[bytes]) -> Iterator[tuple[str, _Lines]]:
    """The file's name for messages and its lines, from UTF-8 with or without a BOM; a stream given
    by the caller is left open."""
    if isinstance(path_or_file, (str, Path)):
        name = str(path_or_file)
        try:
            binary: IO[bytes] = open(path_or_file, "rb")  # noqa: SIM115  (closed by the `with` below)
        except OSError as exc:
            raise CsvError(f"{name}: cannot read it: {exc.strerror or exc}") from None
        with binary, _text(binary) as text:
            yield name, _Lines(name, text)
        return
    name = str(getattr(path_or_file, "name", "<file>"))
    # What an empty read gives says which of the two the stream is (its type cannot say it to mypy).
    if isinstance(path_or_file.read(0), str):
        yield name, _Lines(name, cast(IO[str], path_or_file))
        return
    wrapper = _text(cast(IO[bytes], path_or_file))
    try:
        yield name, _Lines(name, wrapper)
    finally:
        wrapper.detach()  # the caller's stream (standard input) stays open


def _text(binary: IO[bytes]) -> io.TextIOWrapper:
    # newline="": csv sees each line end as written (a quoted cell may hold one); surrogateescape: a
    # byte that is not UTF-8 is found by _Lines with its line number rather than somewhere in a chunk.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _delimiter(header: str) -> str:
    """Excel writes ';' where the decimal mark is a comma (French locales): count both in the header."""
    return ";" if header.count(";") > header.count(",") else ","


def _records(lines: _Lines) -> Iterator[tuple[int, list[str] | None, str]]:
    """(starting physical line, cells, "") for each record, blank lines skipped; (line, None, reason)
    for a record csv cannot read, or a line over LINE_MAX."""
    try:
        first = lines.peek()
    except _LongLine as exc:
        raise CsvError(f"{lines.name}: line {exc.line} is longer than {LINE_MAX:,} characters: not a subscriber list") from None
    reader = csv.reader(lines, delimiter=_delimiter(first))
    while True:
        start = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _LongLine as exc:
            yield exc.line, None, f"the line is longer than {LINE_MAX:,} characters"
            continue
        except csv.Error as exc:
            limit = csv.field_size_limit()
            reason = f"a cell is longer than {limit:,} characters" if "field limit" in str(exc) else f"not CSV: {exc}"
            yield start, None, reason
            continue
        if cells and (cells[0].strip() or any(cell.strip() for cell in cells)):  # blank lines skipped
            yield start, cells, ""


def _checked_rows(name: str, lines: _Lines, known: set[str] | None, report: ImportReport) -> Iterator[tuple[int, Fields]]:
    records = _records(lines)
    found: Header | None = None
    for line, cells, problem in records:
        if cells is None:
            raise CsvError(f"{name}: line {line}: not a CSV header: {problem}")
        found, warning = header(name, line, cells)
        if warning:
            report.remark(line, warning)
        break
    if found is None:
        raise CsvError(f"{name}: empty file", f"the first line names the columns: {','.join(COLUMNS)}")
    checker = RowChecker(found, known)
    for line, cells, problem in records:
        if cells is None:
            report.reject(line, problem)
            continue
        try:
            yield line, checker.check(cells)
        except InvalidSubscriber as exc:
            report.reject(line, str(exc))


def export_history(store: Store, file: IO[str]) -> int:
    """The consent history of every address on record (erased ones have none), in the order it was written,
    as CSV; returns how many rows were written."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    count = 0
    for email, event in store.iter_history():
        row = (email, iso_utc(event.at), event.event, event.channel, event.source, event.wording or "",
               event.network or "", event.user_agent or "", json.dumps(event.detail, ensure_ascii=False, sort_keys=True)
               if event.detail else "")
        writer.writerow([neutralise(cell) for cell in row])
        count += 1
    return count
