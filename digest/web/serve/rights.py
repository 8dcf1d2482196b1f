"""The reader's rights from the preferences page: everything kept about them, as the JSON file of
"download my data". ("Erase me" is the store's `erase`, after the page's confirmation step.)"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from digest.core.config import Settings
from digest.delivery.schema import deliveries
from subscribers.csvio import iso_utc
from subscribers.model import Subscriber
from subscribers.store import Store
from subscribers.validate import weekday_name

ACTIONS = ("download", "erase", "erase_confirmed")  # the preferences form's actions for them


def data_of(store: Store, settings: Settings, subscriber: Subscriber) -> dict[str, Any]:
    """The record, its consent history and the emails sent: all that is kept about the reader."""
    history = store.history(subscriber.email)
    query = (select(deliveries.c.edition, deliveries.c.status, deliveries.c.updated_at)
             .where(deliveries.c.subscriber_id == subscriber.id).order_by(deliveries.c.edition))
    with store.engine.connect() as conn:
        sent = [{"edition": edition, "status": status, "at": iso_utc(at)} for edition, status, at in conn.execute(query)]
    news = settings.newsletter
    return {
        "newsletter": news.name, "list_id": news.list_id, "exported_at": iso_utc(datetime.now(UTC)),
        "subscriber": {"email": subscriber.email, "name": subscriber.name, "locale": subscriber.locale,
                       "timezone": subscriber.timezone, "rubrics": sorted(subscriber.rubrics),
                       "status": subscriber.status, "delivery_time": subscriber.delivery_time,
                       "cadence": subscriber.cadence, "weekday": weekday_name(subscriber.weekday) or None,
                       "created_at": iso_utc(subscriber.created_at), "updated_at": iso_utc(subscriber.updated_at)},
        "history": [event.as_json() for event in history],
        "deliveries": sent,
    }
