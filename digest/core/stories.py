"""One story however it comes: the same page however it was linked, the same title however it was
worded. What gathering merges within a day, and the store of items across days."""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|mc_cid|mc_eid|xtor|at_medium|at_campaign|ocid|cmpid)$", re.I)


def canonical_url(url: str) -> str:
    """The same page however it was linked: scheme, www., tracking parameters, fragment and trailing slash aside."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)))
    return urlunsplit(("", host, parts.path.rstrip("/") or "/", query, ""))


# Words that may differ between two copies of one story: articles, prepositions, conjunctions.
_SMALL_WORDS = frozenset(
    ["l", "d", "le", "la", "les", "un", "une", "des", "de", "du", "a", "au", "aux", "en", "et", "ou", "sur", "pour", "par", "avec", "dans", "the", "of", "in", "on", "at", "to", "and", "for", "a", "an"]
)


def _stem(word: str) -> str:
    """Singular and plural, masculine and feminine alike: "indices" ~ "indice", "mitigees" ~ "mitige"."""
    for suffix in ("es", "s", "x", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def word_set(key: str) -> frozenset[str]:
    """What must be equal for two titles to be one story: the words, small words and endings aside."""
    return frozenset(_stem(w) for w in key.split() if w not in _SMALL_WORDS)


def same_story(key_a: str, key_b: str, similarity: float) -> bool:
    """Near-identical titles: the same words (small words and word endings aside), and similar as
    strings. "le MASI termine en hausse" and "… en baisse" are two stories, however alike they look."""
    return word_set(key_a) == word_set(key_b) and SequenceMatcher(None, key_a, key_b).ratio() >= similarity
