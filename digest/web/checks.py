"""What must hold for an email to look right and be deliverable: checked on the rendered HTML.

Shared by `digest build --check` and `digest preview`. Each check reads the HTML as a mail app gets
it (CSS inlined), follows inline styles down the tree as a browser would, and says where it failed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import lxml.html
from babel.numbers import format_decimal
from cssselect import SelectorError, parse
from lxml.cssselect import CSSSelector

from digest.core.model import Rendered
from digest.pipeline import i18n
from digest.pipeline.colors import RGB, contrast, parse_color

__all__ = ["RGB", "Check", "contrast", "failed", "parse_color", "run", "text_runs"]

GMAIL_CLIP = 102_000  # bytes of HTML after which Gmail hides the rest ("[Message clipped]")
MIN_FONT_PX = 14.0
MIN_CONTRAST = 4.5
MIN_CONTRAST_LARGE = 3.0  # WCAG: text of 24px, or 18.66px bold, and up
MIN_CONTRAST_CONTROL = 3.0  # WCAG 1.4.11: a button against what surrounds it
SUBJECT_MAX = 77  # under 78: what mail apps show of a subject
PREHEADER_RANGE = (30, 150)

_FONT_SIZE = re.compile(r"font-size\s*:\s*([\d.]+)px")
_FONT_WEIGHT = re.compile(r"font-weight\s*:\s*(bold|[6-9]00)")
_COLOR = re.compile(r"(?:^|;)\s*color\s*:\s*([^;!]+)")
_BACKGROUND = re.compile(r"(?:^|;)\s*background(?:-color)?\s*:\s*([^;!]+)")
_DARK = re.compile(r"@media[^{]*prefers-color-scheme\s*:\s*dark[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}")
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")


@dataclass(frozen=True)
class Check:
    name: str  # a stable key: "size", "alt text", …
    ok: bool
    message: str
    details: tuple[str, ...] = field(default=())
    label: str = ""  # the name in the reader's language

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        lines = [f"{mark}  {self.name:<12} {self.message}"]
        lines += [f"      {'':<12} {d}" for d in self.details[:5]]
        if len(self.details) > 5:
            lines.append(f"      {'':<12} … and {len(self.details) - 5} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class TextRun:
    text: str
    size: float
    bold: bool
    color: RGB
    background: RGB
    tag: str


def text_runs(root: lxml.html.HtmlElement) -> list[TextRun]:
    """Every visible run of text with the size, weight and colours it is shown in (inline styles,
    inherited down the tree; a hidden element such as the preheader is skipped)."""
    out: list[TextRun] = []

    def walk(el: lxml.html.HtmlElement, size: float, bold: bool, color: RGB, background: RGB, hidden: bool) -> None:
        if not isinstance(el.tag, str):
            return
        style = el.get("style", "")
        compact = style.replace(" ", "").lower()
        hidden = hidden or "display:none" in compact or el.tag in ("style", "script", "head", "title")
        sizes = _FONT_SIZE.findall(style)
        size = float(sizes[-1]) if sizes else size
        bold = bold or el.tag in ("h1", "h2", "h3", "h4", "b", "strong", "th") or bool(_FONT_WEIGHT.search(style))
        colors = _COLOR.findall(style)
        color = parse_color(colors[-1]) or color if colors else color
        backgrounds = _BACKGROUND.findall(style)
        shown = (parse_color(backgrounds[-1]) if backgrounds else None) or parse_color(el.get("bgcolor") or "")
        background = shown or background
        if el.text and el.text.strip() and not hidden:
            out.append(TextRun(el.text.strip(), size, bold, color, background, el.tag))
        for child in el:
            walk(child, size, bold, color, background, hidden)
            if child.tail and child.tail.strip() and not hidden:
                out.append(TextRun(child.tail.strip(), size, bold, color, background, el.tag))

    body = root.find("body")
    if body is not None:
        walk(body, 16.0, False, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False)
    return out


def dark_mode(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The document as a mail app that honours `prefers-color-scheme: dark` shows it: each rule of the
    dark block added to the inline style of what it selects, the more specific last (they all carry
    !important, so they win over the inline styles, and the most specific over the others)."""
    dark = lxml.html.document_fromstring(lxml.html.tostring(root))
    rules: list[tuple[tuple[int, int, int], int, str, str]] = []
    for style in dark.iter("style"):
        for block in _DARK.findall(style.text or ""):
            for selectors, declarations in _RULE.findall(re.sub(r"/\*.*?\*/", "", block, flags=re.S)):
                for selector in selectors.split(","):
                    try:
                        specificity = parse(selector.strip())[0].specificity()
                    except (SelectorError, IndexError):
                        continue
                    rules.append((specificity, len(rules), selector.strip(), declarations.replace("!important", "")))
    for _, _, selector, declarations in sorted(rules):
        for el in _elements(CSSSelector(selector)(dark)):
            el.set("style", f"{el.get('style', '').rstrip().rstrip(';')};{declarations.strip()}")
    return dark


def _elements(found: object) -> list[lxml.html.HtmlElement]:
    """What a CSS selector found: elements (lxml's types allow an XPath's text results too)."""
    return [el for el in found if isinstance(el, lxml.html.HtmlElement)] if isinstance(found, list) else []


def _background(el: lxml.html.HtmlElement | None) -> RGB:
    """The colour painted behind an element: its own, else its nearest ancestor's."""
    while el is not None:
        backgrounds = _BACKGROUND.findall(el.get("style", ""))
        shown = (parse_color(backgrounds[-1]) if backgrounds else None) or parse_color(el.get("bgcolor") or "")
        if shown:
            return shown
        el = el.getparent()
    return (1.0, 1.0, 1.0)


def faint_controls(root: lxml.html.HtmlElement) -> list[str]:
    """Buttons (links with a background of their own) that do not stand out 3:1 from what surrounds them."""
    out = []
    for link in root.iter("a"):
        if not _BACKGROUND.search(link.get("style", "")):
            continue
        # MJML draws a button as a link in a cell of its own small table: what surrounds it is behind that table.
        table = next(link.iterancestors("table"), None)
        ratio = contrast(_background(link), _background(table.getparent() if table is not None else None))
        if ratio < MIN_CONTRAST_CONTROL:
            out.append(f"{ratio:.2f}:1 (needs {MIN_CONTRAST_CONTROL:g}): button {_short(link.text_content().strip())}")
    return out


def _short(text: str) -> str:
    return text if len(text) <= 50 else text[:49] + "…"


# The checks' names as people read them (the preview translates them; `name` stays the key).
def _labels(_: Callable[[str], str]) -> dict[str, str]:
    return {"size": _("size"), "alt text": _("alt text"), "links": _("links"), "one h1": _("one h1"),
            "text size": _("text size"), "contrast": _("contrast"), "unsubscribe": _("unsubscribe"),
            "subject": _("subject"), "preheader": _("preheader")}


def run(rendered: Rendered, budget: int = 100_000, locale: str = "en") -> list[Check]:
    """Every check, its message in `locale` (English for the command line, the newsroom's language
    in the preview)."""
    checker = _Checker(rendered, budget, locale)
    root = lxml.html.document_fromstring(rendered.html)
    checker.size()
    checker.images_and_links(root)
    checker.text(root)
    checker.unsubscribe()
    checker.lengths()
    return checker.checks


class _Checker:
    """The checks of one rendering, each adding its Check in the reader's language."""

    def __init__(self, rendered: Rendered, budget: int, locale: str) -> None:
        self.rendered, self.budget, self.locale = rendered, budget, locale
        self._ = i18n.translations(locale).gettext
        self.ngettext = i18n.translations(locale).ngettext
        self.labels = _labels(self._)
        self.checks: list[Check] = []

    def num(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)

    def add(self, name: str, ok: bool, message: str, details: tuple[str, ...] = ()) -> None:
        self.checks.append(Check(name, ok, message, details, self.labels[name]))

    def size(self) -> None:
        _, num = self._, self.num
        size = len(self.rendered.html.encode("utf-8"))
        self.add("size", size <= self.budget, _("%(size)s bytes of HTML, budget %(budget)s (Gmail clips near %(clip)s)")
                 % {"size": num(size), "budget": num(self.budget), "clip": num(GMAIL_CLIP)})

    def images_and_links(self, root: lxml.html.HtmlElement) -> None:
        _, num = self._, self.num
        images = root.findall(".//img")
        missing = tuple(img.get("src", "?") for img in images if not (img.get("alt") or "").strip())
        self.add("alt text", not missing, _("%(with)s of %(all)s images have alt text")
                 % {"with": num(len(images) - len(missing)), "all": num(len(images))}, missing)
        bad_links = []
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue
            for attribute in ("href", "src", "background"):
                value = (el.get(attribute) or "").strip()
                if value and not value.startswith(("https://", "mailto:")):
                    bad_links.append(f"<{el.tag} {attribute}=\"{_short(value)}\">")
        self.add("links", not bad_links, _("every link and image is https:// (or mailto:)") if not bad_links
                 else self.ngettext("%(num)d link is http: or relative", "%(num)d links are http: or relative",
                                    len(bad_links)) % {"num": len(bad_links)}, tuple(bad_links))
        h1 = root.findall(".//h1")
        self.add("one h1", len(h1) == 1, _("%(num)s <h1> (one, the masthead)") % {"num": num(len(h1))})

    def text(self, root: lxml.html.HtmlElement) -> None:
        _, num = self._, self.num
        runs = text_runs(root)
        small = tuple(f"{r.size:g}px: {_short(r.text)}" for r in runs if r.size < MIN_FONT_PX)
        self.add("text size", not small, _("body text at least %(px)spx") % {"px": f"{MIN_FONT_PX:g}"} if not small
                 else _("%(num)s runs of text under %(px)spx") % {"num": num(len(small)), "px": f"{MIN_FONT_PX:g}"},
                 small)
        faint = self.faint(runs, "") + faint_controls(root)
        dark = dark_mode(root)
        faint += [f"dark mode: {line}" for line in self.faint(text_runs(dark), "") + faint_controls(dark)]
        self.add("contrast", not faint,
                 _("text contrast at least %(ratio)s:1 against its background") % {"ratio": num(MIN_CONTRAST)}
                 if not faint else
                 _("%(num)s runs of text below %(ratio)s:1") % {"num": num(len(faint)), "ratio": num(MIN_CONTRAST)},
                 tuple(faint))

    @staticmethod
    def faint(runs: list[TextRun], prefix: str) -> list[str]:
        """Runs of text under WCAG 2's contrast (4.5:1, or 3:1 for large text)."""
        out = []
        for r in runs:
            needed = MIN_CONTRAST_LARGE if r.size >= 24 or (r.size >= 18.66 and r.bold) else MIN_CONTRAST
            ratio = contrast(r.color, r.background)
            if ratio < needed:
                out.append(f"{prefix}{ratio:.2f}:1 (needs {needed}): {_short(r.text)}")
        return out

    def unsubscribe(self) -> None:
        _, html = self._, self.rendered.html
        # The footer's link carries the subscriber's slot (the one this rendering used); any other
        # "/unsubscribe/" (in a feed's URL, say) does not count.
        match = re.search(r'<a\b[^>]*href="[^"]*/unsubscribe/' + re.escape(self.rendered.slot), html)
        position = match.start() if match else -1
        clip = min(self.budget, GMAIL_CLIP)
        unsubscribe_ok = position >= 0 and len(html[:position].encode("utf-8")) < clip
        self.add("unsubscribe", unsubscribe_ok, _("unsubscribe link present before the clipping point") if unsubscribe_ok
                 else (_("no unsubscribe link") if position < 0 else _("the unsubscribe link is past the clipping point")))

    def lengths(self) -> None:
        _, num = self._, self.num
        subject = self.rendered.subject
        self.add("subject", 0 < len(subject) <= SUBJECT_MAX, _("%(num)s characters (%(low)s to %(high)s)")
                 % {"num": num(len(subject)), "low": num(1), "high": num(SUBJECT_MAX)})
        low, high = PREHEADER_RANGE
        pre = self.rendered.preheader
        self.add("preheader", low <= len(pre) <= high, _("%(num)s characters (%(low)s to %(high)s)")
                 % {"num": num(len(pre)), "low": num(low), "high": num(high)})


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]
