"""What one row of a subscriber CSV is: its columns (a table: one line per column and its check), the
header that places them, and the check of a row into Fields, every problem in it named at once.

A file of a million rows has a few dozen distinct locales, time zones, statuses, rubric choices and
hours: each column marked ``repeats`` checks a value once per import and keeps the outcome (the value,
or the problem), up to VALUES_KEPT values per column. Addresses are checked on every row, their domains
once (subscribers.validate.checked_domain).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from digest.core.errors import CsvError, InvalidSubscriber
from digest.core.text import printable
from subscribers.validate import (
    Fields,
    check_cadence,
    check_delivery_time,
    check_locale,
    check_moment,
    check_rubrics,
    check_status,
    check_timezone,
    check_weekday,
    clean_name,
    normalise_email,
    split_rubrics,
)

Known = set[str] | None  # the newsletter's rubric keys (None: their format only)


@dataclass(frozen=True)
class Column:
    """A column after ``email``: the Fields attribute it fills and how a cell becomes its value.
    ``blank_is_value``: an empty cell is a value (no name, every rubric), else "not given" (None)."""

    name: str
    check: Callable[[str, Known], Any]
    blank_is_value: bool = False
    repeats: bool = True  # few distinct values in a list: checked once per value


def _importable(raw: str, _known: Known) -> str:
    status = check_status(raw)
    if status == "pending":
        raise InvalidSubscriber("status pending is the sign-up form's: a reader is pending only until they confirm",
                                "use active, unsubscribed or bounced")
    return status


COLUMNS_CHECKED = (
    Column("name", lambda raw, _: clean_name(raw), blank_is_value=True, repeats=False),
    Column("locale", lambda raw, _: check_locale(raw)),
    Column("timezone", lambda raw, _: check_timezone(raw)),
    Column("rubrics", lambda raw, known: check_rubrics(split_rubrics(raw), known), blank_is_value=True),
    Column("status", _importable),
    Column("created_at", lambda raw, _: check_moment(raw), repeats=False),
    Column("delivery_time", lambda raw, _: check_delivery_time(raw)),
    Column("cadence", lambda raw, _: check_cadence(raw)),
    Column("weekday", lambda raw, _: check_weekday(raw)),
)
COLUMNS = ("email", *(column.name for column in COLUMNS_CHECKED))
# Headers written by French-speaking staff or other tools, read as ours.
ALIASES = {"e-mail": "email", "mail": "email", "courriel": "email", "nom": "name", "langue": "locale", "rubriques": "rubrics",
           "statut": "status", "heure": "delivery_time", "rythme": "cadence", "jour": "weekday"}
IGNORED_SHOWN = 10  # ignored header names listed in the warning
VALUES_KEPT = 10_000  # checked values kept per column: a column of all-different values stops being kept
# A cell starting with one of these is a formula to a spreadsheet (=, +, - and @ run; tab and CR are
# skipped before looking). On export it gets a leading apostrophe, shown as text; so that import can take
# it off, a cell already starting with an apostrophe and one of these (or another apostrophe) gets one too.
FORMULA_STARTS = frozenset("=+-@\t\r")
_ESCAPED = FORMULA_STARTS | {"'"}


def neutralise(cell: str) -> str:
    """The cell as export writes it: an apostrophe before a formula (see FORMULA_STARTS)."""
    if cell[:1] in FORMULA_STARTS or (cell[:1] == "'" and cell[1:2] in _ESCAPED):
        return "'" + cell
    return cell


def restore(cell: str) -> str:
    """The inverse of ``neutralise``: one apostrophe off before a formula character or an apostrophe.
    A name such as "'Tis" was never neutralised and stays as it is."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _ESCAPED else cell


@dataclass(frozen=True)
class Header:
    line: int
    width: int  # how many columns it names
    email: int  # the email column's position
    columns: tuple[tuple[Column, int], ...]  # the other columns present, with their position


def header(name: str, line: int, cells: list[str]) -> tuple[Header, str | None]:
    """Which of our columns each header cell is, in one pass (a header may have 80,000 cells); and a
    warning naming the cells ignored, if any."""
    index: dict[str, int] = {}
    ignored: list[str] = []
    for position, cell in enumerate(cells):
        key = cell.strip().lower().replace(" ", "_")
        key = ALIASES.get(key, key)
        if key in index:
            raise CsvError(f"{name}: line {line}: the column {cell.strip()!r} appears twice")
        if key in COLUMNS:
            index[key] = position
        elif cell.strip():
            ignored.append(cell.strip())
    if "email" not in index:
        if any("@" in cell for cell in cells):
            raise CsvError(f"{name}: line {line} is an address, not a header",
                           f"add a first line naming the columns, e.g. {','.join(COLUMNS)}")
        raise CsvError(f"{name}: no email column in the header (line {line})", f"name the columns: {','.join(COLUMNS)}")
    warning = None
    if ignored:
        shown = ", ".join(printable(cell) for cell in ignored[:IGNORED_SHOWN])
        more = f" and {len(ignored) - IGNORED_SHOWN:,} more" if len(ignored) > IGNORED_SHOWN else ""
        warning = f"column(s) ignored: {shown}{more}"
    present = tuple((column, index[column.name]) for column in COLUMNS_CHECKED if column.name in index)
    return Header(line, len(cells), index["email"], present), warning


class RowChecker:
    """Checks rows against one header and one set of rubrics. The repeating columns' cells of a row,
    together, are checked once per import and their outcome kept (up to VALUES_KEPT combinations; a
    list has a few hundred): the rubrics known differ from one newsletter to the next, so per import."""

    def __init__(self, header: Header, known: Known) -> None:
        self.header, self.known = header, known
        self._repeating = tuple((order, column, position) for order, (column, position) in enumerate(header.columns)
                                if column.repeats)
        self._each = tuple((order, column, position) for order, (column, position) in enumerate(header.columns)
                           if not column.repeats)
        self._kept: dict[tuple[str, ...], tuple[dict[str, Any], list[tuple[int, str]]]] = {}

    def check(self, cells: list[str]) -> Fields:
        """One record checked field by field; every problem in it named at once (InvalidSubscriber)."""
        header = self.header
        width = len(cells)
        if width > header.width and any(c.strip() for c in cells[header.width:]):
            raise InvalidSubscriber(f"{width} cells but the header names {header.width} columns")
        problems: list[tuple[int, str]] = []
        email = ""
        try:
            email = normalise_email(restore(cells[header.email].strip(" \t")) if header.email < width else "")
        except InvalidSubscriber as exc:
            problems.append((-1, str(exc)))
        key = tuple([cells[position].strip(" \t") if position < width else "" for _, _, position in self._repeating])
        kept = self._kept.get(key)
        if kept is None:
            kept = self._check_repeating(key)
        fields, found = kept
        if self._each:
            fields = dict(fields)
            for order, column, position in self._each:
                self._check_one(order, column, cells[position].strip(" \t") if position < width else "", fields, problems)
        if problems or found:
            raise InvalidSubscriber("; ".join(problem for _, problem in sorted(problems + found)))
        return Fields(email=email, **fields)

    def _check_repeating(self, key: tuple[str, ...]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
        fields: dict[str, Any] = {}
        problems: list[tuple[int, str]] = []
        for (order, column, _), raw in zip(self._repeating, key):
            self._check_one(order, column, raw, fields, problems)
        if len(self._kept) < VALUES_KEPT:
            self._kept[key] = (fields, problems)
        return fields, problems

    def _check_one(self, order: int, column: Column, raw: str, fields: dict[str, Any], problems: list[tuple[int, str]]) -> None:
        raw = restore(raw)
        if not raw and not column.blank_is_value:
            return  # not given
        try:
            fields[column.name] = column.check(raw, self.known)
        except InvalidSubscriber as exc:
            problems.append((order, str(exc)))
