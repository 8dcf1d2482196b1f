"""A ranked Edition as JSON and back, exactly: what an enqueued edition keeps in the database, so that
a worker anywhere renders a variant the enqueue did not foresee from the same content, never from the
sources (which may have changed since)."""
from __future__ import annotations

import json
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from digest.core.model import Edition, Image, Item, Ranked, Section


def _item_to_json(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(Item):
        value = getattr(item, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Image):
            value = {"url": value.url, "alt": value.alt}
        out[f.name] = value
    return out


def _item_from_json(data: dict[str, Any]) -> Item:
    values = dict(data)
    values["published"] = datetime.fromisoformat(values["published"])
    values["body"] = tuple(values.get("body", ()))
    if values.get("image"):
        values["image"] = Image(**values["image"])
    known = {f.name for f in fields(Item)}
    return Item(**{k: v for k, v in values.items() if k in known})


def _ranked(data: dict[str, Any]) -> Ranked:
    return Ranked(_item_from_json(data["item"]), data["rubric"], data["score"])


def _ranked_json(ranked: Ranked) -> dict[str, Any]:
    return {"item": _item_to_json(ranked.item), "rubric": ranked.rubric, "score": ranked.score}


def item_dumps(item: Item) -> str:
    """One item as the store of items keeps it."""
    return json.dumps(_item_to_json(item), ensure_ascii=False, separators=(",", ":"))


def item_loads(text: str) -> Item:
    return _item_from_json(json.loads(text))


def dumps(edition: Edition) -> str:
    return json.dumps({
        "version": 1,
        "date": edition.date.isoformat(),
        "timezone": edition.timezone,
        "leads": [_ranked_json(r) for r in edition.leads],
        "sections": [{"rubric": s.rubric, "label": s.label, "color": s.color,
                      "items": [_ranked_json(r) for r in s.items]} for s in edition.sections],
        "more": [_ranked_json(r) for r in edition.more],
        **({"first": edition.first.isoformat()} if edition.first else {}),
        **({"stories": [list(pair) for pair in edition.stories]} if edition.stories else {}),
    }, ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> Edition:
    data = json.loads(text)
    return Edition(
        date=date.fromisoformat(data["date"]),
        timezone=data["timezone"],
        leads=tuple(_ranked(r) for r in data["leads"]),
        sections=tuple(Section(s["rubric"], s["label"], s["color"], tuple(_ranked(r) for r in s["items"]))
                       for s in data["sections"]),
        more=tuple(_ranked(r) for r in data["more"]),
        first=date.fromisoformat(data["first"]) if data.get("first") else None,
        stories=tuple((item_id, key) for item_id, key in data.get("stories", ())),
    )
