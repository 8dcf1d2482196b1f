"""The audience: who receives which rubrics, in which language (store, CSV import/export, signed tokens).

The public surface is re-exported here; the modules behind it are free to change.

    InvalidSubscriber(DigestError, ValueError)   a field a user gave is wrong (exit 2)
    StoreError(DigestError)                      the database cannot be opened (exit 2)
    CsvError(DigestError)                        a CSV file cannot be imported at all (exit 2)
"""
from __future__ import annotations

from digest.core.errors import CsvError, InvalidSubscriber, StoreError
from subscribers.csvio import ImportReport, export_csv, import_csv
from subscribers.model import LOCALES, STATUSES, Subscriber
from subscribers.store import Store, Upserted
from subscribers.tokens import TOKEN_LENGTH, Tokens, load_keys
from subscribers.validate import Fields, normalise_email

__all__ = [
    "LOCALES",
    "STATUSES",
    "TOKEN_LENGTH",
    "CsvError",
    "Fields",
    "ImportReport",
    "InvalidSubscriber",
    "Store",
    "StoreError",
    "Subscriber",
    "Tokens",
    "Upserted",
    "export_csv",
    "import_csv",
    "load_keys",
    "normalise_email",
]
