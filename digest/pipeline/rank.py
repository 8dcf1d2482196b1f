"""Items + the rubric table → an edition: rubric per item, score, order, lead stories. Pure, no I/O."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from digest.core.config import Rubric, Settings
from digest.core.model import Edition, Item, Ranked, Section, order_key
from digest.core.text import fold


@dataclass(frozen=True)
class _Matcher:
    rubric: Rubric
    names: frozenset[str]  # folded key, labels and aliases: what a source category may say
    keywords: re.Pattern | None


def _matchers(rubrics: tuple[Rubric, ...]) -> list[_Matcher]:
    out = []
    for rubric in rubrics:
        names = {fold(rubric.key), fold(rubric.label), *map(fold, rubric.labels.values()), *map(fold, rubric.aliases)}
        words = sorted({fold(k) for k in rubric.keywords}, key=len, reverse=True)
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)") if words else None
        out.append(_Matcher(rubric, frozenset(names), pattern))
    return out


def assign_rubric(item: Item, matchers: list[_Matcher], default: str) -> str:
    """The source's category when it names a rubric; else the keyword rules (whole words, case and
    accents ignored, a title hit counting double); else the default rubric."""
    if item.category:
        category = fold(item.category).strip()
        for m in matchers:
            if category in m.names:
                return m.rubric.key
    title, rest = fold(item.title), fold(item.summary or (item.body[0] if item.body else ""))
    best, best_hits = default, 0
    for m in matchers:
        if m.keywords is None:
            continue
        hits = 2 * len(m.keywords.findall(title)) + len(m.keywords.findall(rest))
        if hits > best_hits:  # strictly greater: ties go to the rubric listed first
            best, best_hits = m.rubric.key, hits
    return best


def score(item: Item, rubric: Rubric, now_ts: float, settings: Settings, half_life_hours: float | None = None) -> float:
    """Editorial weight × freshness (halved every half-life) × the featured boost."""
    age_hours = max(0.0, (now_ts - item.published.timestamp()) / 3600)
    value = rubric.weight * 0.5 ** (age_hours / (half_life_hours or settings.ranking.half_life_hours))
    if item.featured:
        value *= settings.ranking.featured_boost
    return round(value, 6)


def rank(items: list[Item] | tuple[Item, ...], settings: Settings, day: date, timezone: str,
         first: date | None = None) -> Edition:
    """The day's edition; with `first`, the week's from `first` to `day`: freshness counted within
    the week (ranking.weekly_half_life_hours) and the week's lead stories (ranking.weekly_leads)."""
    half_life = settings.ranking.weekly_half_life_hours if first else settings.ranking.half_life_hours
    lead_count = settings.ranking.weekly_leads if first else settings.ranking.leads
    matchers = _matchers(settings.rubrics)
    by_key = {r.key: r for r in settings.rubrics}
    # Freshness is measured from the newest item, not the clock, so a re-run gives the same edition.
    now_ts = max((i.published.timestamp() for i in items), default=0.0)
    ranked = []
    for item in items:
        key = assign_rubric(item, matchers, settings.default_rubric)
        ranked.append(Ranked(item, key, score(item, by_key[key], now_ts, settings, half_life)))
    ranked.sort(key=order_key)

    candidates = [r for r in ranked if r.item.featured and r.item.kind == "article"]
    if not candidates:
        candidates = [r for r in ranked if r.item.kind == "article"]
    leads = tuple(candidates[:lead_count])
    lead_ids = {id(r) for r in leads}

    sections, more = [], []
    for rubric in settings.rubrics:
        members = [r for r in ranked if r.rubric == rubric.key and id(r) not in lead_ids]
        if members:
            sections.append(Section(rubric.key, rubric.label, rubric.color, tuple(members[: rubric.max_items])))
            more.extend(members[rubric.max_items:])
    more.sort(key=order_key)
    return Edition(date=day, timezone=timezone, leads=leads, sections=tuple(sections), more=tuple(more), first=first)


def ranked_items(edition: Edition) -> list[Ranked]:
    """Every item of the edition, best first (the order `digest gather` prints)."""
    return sorted(edition.items, key=order_key)
