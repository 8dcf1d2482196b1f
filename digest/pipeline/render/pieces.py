"""A language's email rendered and inlined once, in pieces; each variant cut from them.

Rendering a variant in full costs a Jinja pass, an MJML compile and a premailer pass (premailer is
20 to 35 times the compile). The pieces are the same in every variant of a language: the head and
masthead, each rubric's section head and foot, each article, each brief row, each "more on the
web" line, the footer. So the language's email is rendered once with every item in its section
and again in the "more" list, each piece behind a `<!--§name-->` mark, inlined once, and split at
the marks. A variant is then its context (the same code as a full render) laid out with those
pieces: a join of strings, with three texts (preheader, "in this edition", "and N more") written in
as lxml would have written them.

This holds because the theme's CSS and MJML's select by an element's ancestors only, never by its
siblings or position (no :first-child, no `+`): an inlined piece reads the same wherever it stands.
tests/test_variants.py checks it byte for byte against full renders, and a theme whose template
has no marks gets full renders.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree, html

# Texts that differ per variant are rendered as these, then written in: noncharacters, which no
# source can bring (digest.core.text takes them out of every item).
PREHEADER = "\ufdd0preheader\ufdd1"
CONTENTS = "\ufdd0contents\ufdd1"
MORE_LINE = "\ufdd0more\ufdd1"
_MARK = re.compile(r"<!--§([^>]*?)-->")


class Missing(KeyError):
    """A variant needs a piece the language's render does not have: render it in full instead."""


def serialized(text: str) -> str:
    """A text node as lxml writes it in premailer's output (the same escaping, the same characters)."""
    element = html.Element("p")
    element.text = text
    return etree.tostring(element, method="html", encoding="utf-8").decode("utf-8")[3:-4]


@dataclass(frozen=True)
class Pieces:
    head: str  # from the doctype to the first mark: head, preheader, masthead (and, without sections, the leads)
    parts: dict[str, str]

    def __getitem__(self, name: str) -> str:
        try:
            return self.parts[name]
        except KeyError:
            raise Missing(name) from None

    def assemble(self, context: dict[str, Any]) -> str:
        """The variant's HTML, from its context, exactly as a full render of it would be."""
        out = [self.head.replace(PREHEADER, serialized(context["preheader"]), 1)]
        if "contents" in self.parts:
            if context["contents_line"]:
                out.append(self.parts["contents"].replace(CONTENTS, serialized(context["contents_line"]), 1))
            out.append(self.parts["/contents"])
        elif context["contents_line"]:
            raise Missing("contents")
        for section in context["sections"]:
            out.append(self[f"sec:{section.key}"])
            out += [self[f"art:{item.id}"] for item in section.articles]
            if section.briefs:
                out.append(self[f"briefs:{section.key}"])
                out += [self[f"brief:{item.id}"] for item in section.briefs]
                out.append(self[f"/briefs:{section.key}"])
            out.append(self[f"/sec:{section.key}"])
        if context["more"] or context["more_hidden"]:
            out.append(self["more"])
            out += [self[f"li:{item.id}"] for item in context["more"]]
            out.append(self["/ul"])
            if context["more_hidden"]:
                out.append(self["hidden"].replace(MORE_LINE, serialized(context["more_line"]), 1))
            out.append(self["/more"])
        if not context["leads"] and not context["sections"]:
            out.append(self["nonews"])
        out.append(self["footer"])
        return "".join(out)


def split(inlined: str) -> Pieces | None:
    """The inlined render of a language, cut at its marks; None when the theme wrote none (or wrote
    one twice), so that the fast path is never guessed at."""
    found = _MARK.split(inlined)
    head, rest = found[0], found[1:]
    parts: dict[str, str] = {}
    for name, text in zip(rest[::2], rest[1::2]):
        if name in parts:
            return None
        parts[name] = text
    if "footer" not in parts or PREHEADER not in head:
        return None
    return Pieces(head, parts)
