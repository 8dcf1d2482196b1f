"""Plain text as every floor handles it: one line, folded for matching, cleaned of what cannot be shown,
safe to print; a story's title key. Pure functions of strings, no HTML (that is the pipeline's)."""
from __future__ import annotations

import re
import unicodedata

# White space but the no-break spaces typography puts in ("20\u202f000", "Maroc\u00a0:").
_SPACE = re.compile(r"[^\S\u00a0\u202f]+")
_WORD = re.compile(r"\w+")
# What no source may hand on (mrml refuses most of it, and none of it is text): C0 controls but tab and
# newline, DEL, C1 controls, lone surrogates, and the noncharacters U+FDD0–U+FDEF and U+nFFFE/U+nFFFF.
_NONCHARACTERS = "".join(f"\\U{plane:04x}fffe\\U{plane:04x}ffff" for plane in range(17))
_UNFIT = re.compile(r"\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef" + _NONCHARACTERS + "]")
# Of those, CR (and CR LF) stays a line end and the other white-space controls (VT, FF, the
# separators, NEL) become a space; the rest go.
_AS = {"\r\n": "\n", "\r": "\n", "\x0b": " ", "\x0c": " ", "\x1c": " ", "\x1d": " ", "\x1e": " ", "\x1f": " ", "\x85": " "}



def one_line(text: str) -> str:
    """Collapse every run of white space (CR and LF included) to one space: titles and names never carry a newline.
    No-break spaces stay: they are typography, not layout."""
    return _SPACE.sub(" ", text).strip(" ")


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a text, for matching rubrics and titles."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def clean_text(text: str) -> str:
    """The text without the characters no source may hand on: CR and CR LF become LF, a white-space
    control (VT, FF, NEL …) a space, any other one nothing."""
    if not _UNFIT.search(text):
        return text
    return _UNFIT.sub(lambda m: _AS.get(m.group(), ""), text)


def clean_line(text: str) -> str:
    """A one-line field: clean, and white space (tab and newline included) collapsed to single spaces."""
    return one_line(clean_text(text))


def clean_url(text: str) -> str:
    """An address: every unfit character simply taken out (an address holds no white space)."""
    return _UNFIT.sub("", text).strip() if _UNFIT.search(text) else text.strip()


def printable(text: str) -> str:
    """Text from a source, safe to print on a terminal: every character that is not printable
    (controls, escape sequences, bidi overrides, line ends) written as a Python escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def title_key(title: str) -> str:
    """A title with case, accents, punctuation and a trailing "(vidéo)"-style tag folded away."""
    words = _WORD.findall(fold(title))
    while words and words[-1] in {"video", "photos", "direct", "audio", "live"}:
        words.pop()
    return " ".join(words)
