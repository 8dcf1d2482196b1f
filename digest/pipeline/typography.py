"""Typography per language, the one place its rules live: every text the email, the text twin and
the web pages show goes through `typeset` (content in the views, the theme's strings through the
templates' gettext), never a URL, an address or an HTML entity.

Curly quotes and apostrophes come from smartypants (Gruber's SmartyPants algorithm, which tells an
opening quote from a closing one); French spacing is ours, since no maintained library does it:
a narrow no-break space (U+202F) before `; ! ? %` and `»`, after `«` and between thousands groups, a
no-break space (U+00A0) before `:`, as the Imprimerie nationale's rules and CLDR's French formats
(which babel follows: "20 000", "20 %") write them. A French string that names the newsletter
contracts its article: "à Le Quotidien" is "au Quotidien", "de Le Quotidien" "du Quotidien".
"""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import smartypants

NBSP = "\u00a0"
NNBSP = "\u202f"
_SPACES = " \u00a0\u202f"

# What typography never touches: links, addresses, HTML entities and tags (a theme string may carry
# escaped text), times (20:55) and ratios (2-1).
_PROTECTED = re.compile(r"(?:https?|mailto):[^\s<>\"]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|&#?\w+;|<[^>]*>")
_QUOTES = smartypants.Attr.q | smartypants.Attr.u  # quotes only, written as characters, not entities

_FRENCH = (
    # before ; ! ? (once per run: "?!"), replacing a space or where none was written after a word
    (re.compile(rf"(?<=[\w»)\]”%’])[{_SPACES}]*([;!?]+)(?=[\s)\]»”]|$)"), NNBSP + r"\1"),
    (re.compile(rf"(?<=[\w»)\]”%’])[{_SPACES}]+([;!?]+)"), NNBSP + r"\1"),
    # before a colon that ends a phrase (not a time such as 20:55)
    (re.compile(rf"(?<=[\w»)\]”%’])[{_SPACES}]*:(?=[\s]|$)"), NBSP + ":"),
    (re.compile(rf"(?<=[\w»)\]”%’])[{_SPACES}]+:"), NBSP + ":"),
    # guillemets: curly or French, inside them a narrow no-break space
    (re.compile(rf"[“«][{_SPACES}]*"), "«" + NNBSP),
    (re.compile(rf"[{_SPACES}]*[”»]"), NNBSP + "»"),
    # per cent
    (re.compile(rf"(?<=\d)[{_SPACES}]?%"), NNBSP + "%"),
)
# Thousands written with spaces: "20 000", "1 500 000" (never "20000", which may be a postal code).
_THOUSANDS = re.compile(rf"(?<![\d,.])\d{{1,3}}(?:[{_SPACES}]\d{{3}})+(?![\d])")
_GROUP_SPACE = re.compile(rf"[{_SPACES}]")
_CONTRACTIONS = re.compile(r"\b(à|de) (Le|Les) (?=\w)")
_CONTRACTED = {("à", "Le"): "au ", ("à", "Les"): "aux ", ("de", "Le"): "du ", ("de", "Les"): "des "}


def language(locale: str | None) -> str:
    """The language part of a locale: fr-MA → fr."""
    return (locale or "").replace("_", "-").split("-", 1)[0].lower()


def typeset(text: str, lang: str | None) -> str:
    """Text shown to a reader in `lang`, set by that language's rules (quotes and apostrophes in
    every Latin-script language; French spacing). Links, addresses and entities are left as written."""
    if not text:
        return text
    code = language(lang)
    return _apply(text, _rules(code))


@lru_cache(maxsize=8192)  # the same strings come back in every variant's email and text twin
def phrase(text: str, lang: str | None) -> str:
    """A theme string as the templates show it (already curly): French spacing and contractions only,
    since it may carry escaped variables (`&amp;`, `&#39;`) that quote rules must not read."""
    code = language(lang)
    if code != "fr" or not text:
        return text
    return _apply(_CONTRACTIONS.sub(lambda m: _CONTRACTED[(m[1], m[2])], text), (_french,))


@lru_cache(maxsize=8)
def _rules(code: str) -> tuple[Callable[[str], str], ...]:
    if code == "fr":
        return (_curly_french, _french)
    if code in ("ar", "fa", "ur", "he"):
        return ()  # right-to-left scripts keep their own marks
    return (_curly,)


def _apply(text: str, rules: tuple[Callable[[str], str], ...]) -> str:
    """Each rule on the stretches between protected spans (links, addresses, entities, tags)."""
    if not rules:
        return text
    out: list[str] = []
    last = 0
    for match in _PROTECTED.finditer(text):
        out.append(_run(text[last:match.start()], rules, text[last - 1:last]))
        out.append(match.group())
        last = match.end()
    out.append(_run(text[last:], rules, text[last - 1:last]))
    return "".join(out)


def _run(text: str, rules: tuple[Callable[[str], str], ...], before: str = "") -> str:
    """The rules on a stretch of text; `before`, the character ahead of it (the end of a link, say),
    is there only for the rules that look behind ("a@b.ma ?")."""
    text = before + text
    for rule in rules:
        text = rule(text)
    return text[len(before):]


def _curly(text: str) -> str:
    if "'" not in text and '"' not in text:
        return text
    # smartypants reads "<…>" as a tag: a stray "<" in plain text is kept out of its way.
    return "<".join(smartypants.smartypants(part, _QUOTES) for part in text.split("<"))


def _curly_french(text: str) -> str:
    # In French a straight single quote is an apostrophe ("l'usine"), never a quotation mark.
    return _curly(text.replace("'", "’"))


def _french(text: str) -> str:
    for pattern, replacement in _FRENCH:
        text = pattern.sub(replacement, text)
    return _THOUSANDS.sub(lambda m: _GROUP_SPACE.sub(NNBSP, m.group()), text)
