"""One TOML table read strictly: types checked, every error naming the file and the key, and every
key that is not read named at once with the closest known names (a typo never drops a setting)."""
from __future__ import annotations

import difflib
from typing import Any

from digest.core.config.model import WEEKDAYS
from digest.core.errors import ConfigError

TOP = "(top level)"


class Table:
    """Reads one TOML table, naming file and key in every error, and rejecting unknown keys."""

    def __init__(self, data: Any, where: str, file: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: [{where}] must be a table")
        self.data, self.where, self.file = data, where, file
        self.seen: set[str] = set()

    def _fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.where}.{key} {what}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise self._fail(key, "is required")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self._fail(key, f"must be a {names}, not {value!r}")
        return value

    def weekday(self, key: str, default: int) -> int:
        """A day of the week by its English name (any case): 0 Monday … 6 Sunday."""
        value = self.get(key, str, WEEKDAYS[default]).strip().lower()
        if value not in WEEKDAYS:
            raise self._fail(key, f"must be a day of the week such as \"sunday\", not {value!r}")
        return WEEKDAYS.index(value)

    def positive(self, key: str, kind: type, default: Any) -> Any:
        value = self.get(key, kind, default)
        if value <= 0:
            raise self._fail(key, f"must be greater than 0, not {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise self._fail(key, "must be a list of non-empty strings")
        return tuple(v.strip() for v in values)

    def done(self, known: tuple[str, ...] = ()) -> None:
        """Every key not read is a mistake: all of them are named at once, each with the closest
        known names (a typo in a table's name must not silently drop the whole table)."""
        names = sorted(self.seen | set(known))
        unknown = sorted(set(self.data) - set(names))
        if not unknown:
            return
        problems, unmatched = [], False
        for key in unknown:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
            unmatched = unmatched or not close
            problems.append(self._describe(key) + (f" (did you mean {_or(close)}?)" if close else ""))
        hint = f"known here: {', '.join(names)}" if unmatched and names else None
        raise ConfigError(f"{self.file}: " + "; ".join(problems), hint)

    def _describe(self, key: str) -> str:
        value = self.data[key]
        if self.where == TOP:
            if isinstance(value, dict):
                return f"unknown table [{key}]"
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return f"unknown table [[{key}]]"
            return f"unknown key {key}"
        return f"unknown key {self.where}.{key}"


def _or(names: list[str]) -> str:
    return " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + f" or {names[-1]}"
