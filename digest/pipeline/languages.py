"""The language each item is written in: the source's `lang` when digest.toml gives one, else
detected from its text by py3langid, offline and deterministic.

py3langid (a maintained fork of langid.py: a naive Bayes model shipped inside the wheel, no network,
no random seed) was chosen over lingua (about as accurate on long text, a 96 MB wheel), langdetect
(unmaintained since 2021, random unless seeded) and pycld2 (binds CLD2's 2015 code). A headline is
short, so an item's own guess counts only when the model is sure of it; otherwise the item takes its
source's language, guessed over all the source's text, and failing that the newsletter's.
"""
from __future__ import annotations

from dataclasses import replace
from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from digest.core.model import Item

SURE = 0.9  # an item's own guess is kept at this probability or more
SURE_SOURCE = 0.7  # a source's guess, over all its text
_SAMPLE = 400  # characters of an item looked at: its title and the start of its text
_SOURCE_SAMPLE = 20_000


@cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _sample(item: Item) -> str:
    return f"{item.title}. {item.excerpt}"[:_SAMPLE]


def detect(text: str, sure: float = SURE) -> str | None:
    """The language of a text (ISO 639-1), or None when the model is not sure enough."""
    if not text.strip():
        return None
    lang, probability = _identifier().classify(text)
    return str(lang) if probability >= sure else None


def assign(items: list[Item], declared: str | None, fallback: str | None = None) -> list[Item]:
    """The items of one source, each with its language: the declared one, else its own sure guess,
    else the source's (guessed over all its items), else `fallback`."""
    if declared:
        return [item if item.lang == declared else replace(item, lang=declared) for item in items]
    if not items:
        return items
    source = detect(" ".join(_sample(item) for item in items)[:_SOURCE_SAMPLE], SURE_SOURCE) or fallback
    out = []
    for item in items:
        lang = item.lang or detect(_sample(item)) or source
        out.append(item if lang == item.lang else replace(item, lang=lang))
    return out
