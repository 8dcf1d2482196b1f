"""The audience: who receives which rubrics, in which language (store, CSV import/export, signed tokens).

The public surface is re-exported here, loaded when first used (checking an address does not load the
database layer); the modules behind it are free to change. It stands on digest.core only: its errors
are in the core's tree (InvalidSubscriber, StoreError, CsvError).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "CsvError": "digest.core.errors",
    "InvalidSubscriber": "digest.core.errors",
    "StoreError": "digest.core.errors",
    "ImportReport": "subscribers.csvio",
    "export_csv": "subscribers.csvio",
    "import_csv": "subscribers.csvio",
    "LOCALES": "subscribers.model",
    "STATUSES": "subscribers.model",
    "Subscriber": "subscribers.model",
    "Store": "subscribers.store",
    "Upserted": "subscribers.store",
    "TOKEN_LENGTH": "subscribers.tokens",
    "Tokens": "subscribers.tokens",
    "load_keys": "subscribers.tokens",
    "Fields": "subscribers.validate",
    "normalise_email": "subscribers.validate",
}

__all__ = [
    "CsvError", "Fields", "ImportReport", "InvalidSubscriber", "LOCALES", "STATUSES", "Store",
    "StoreError", "Subscriber", "TOKEN_LENGTH", "Tokens", "Upserted", "export_csv", "import_csv",
    "load_keys", "normalise_email",
]

if TYPE_CHECKING:
    from digest.core.errors import CsvError, InvalidSubscriber, StoreError
    from subscribers.csvio import ImportReport, export_csv, import_csv
    from subscribers.model import LOCALES, STATUSES, Subscriber
    from subscribers.store import Store, Upserted
    from subscribers.tokens import TOKEN_LENGTH, Tokens, load_keys
    from subscribers.validate import Fields, normalise_email


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'subscribers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
