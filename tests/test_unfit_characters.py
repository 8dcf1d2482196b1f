"""One bad character never stops an edition: the sources' side.

A control character, a lone surrogate or a noncharacter, raw or spelt as an escape, in any field of
any source kind: `digest build` and `digest send` (the real CLI, in a subprocess) still make and
deliver the edition, every item is in it and the character is not. (The renderer's own line of
defence is in test_render_skips.py.)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from digest.core.config import SourceSpec
from digest.core.model import Image
from digest.pipeline.sources import Context, feed

from support.items import item
from support.mail import message_parts, parse
from support.newsroom import Newsroom
from support.paths import DAY, TZ

# Each class of character the issue names, by code point.
CLASSES = {
    "nul": 0x00, "soh": 0x01, "esc": 0x1B, "vt": 0x0B, "us": 0x1F, "del": 0x7F,
    "c1-pad": 0x80, "c1-nel": 0x85, "c1-csi": 0x9B,
    "surrogate-high": 0xD800, "surrogate-low": 0xDFFF,
    "nonchar-fdd0": 0xFDD0, "nonchar-fffe": 0xFFFE, "nonchar-ffff": 0xFFFF,
    "nonchar-1fffe": 0x1FFFE, "nonchar-10ffff": 0x10FFFF,
}
FIELDS = ("title", "link", "body", "summary", "image", "alt", "category", "author")
FIELDS_OF = {"pagedump": ("title", "body"), "rss": FIELDS[:5] + FIELDS[6:], "atom": FIELDS[:5] + FIELDS[6:],
             "jsonfeed": FIELDS[:5] + FIELDS[6:], "markdown": FIELDS}  # feeds carry no alt text
# How a character can be written in each kind: as itself, or as the format's escape.
FORMS_OF = {"pagedump": ("raw",), "rss": ("raw", "ref"), "atom": ("raw", "ref"), "jsonfeed": ("raw", "escape"),
            "markdown": ("raw", "escape")}
KINDS = tuple(FIELDS_OF)
BAD = "\u27e6BAD\u27e7"  # where the bad character goes, before the source is encoded


def unfit(code: int) -> bool:
    """The issue's definition, written out on its own (not the code under test's)."""
    return ((code < 0x20 and code not in (0x9, 0xA, 0xD)) or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF
            or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE)


def unfit_in(text: str) -> list[str]:
    """Unfit characters in an output, raw or as an HTML character reference."""
    found = [f"U+{ord(c):04X}" for c in text if unfit(ord(c))]
    for m in re.finditer(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,9}));", text):
        code = int(m[1], 16) if m[1] else int(m[2])
        if unfit(code):
            found.append(m[0])
    return found


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    field: str
    cls: str
    form: str

    @property
    def marker(self) -> str:
        return f"Cas {self.kind} {self.number:03d}"

    def put(self, field: str, clean: str) -> str:
        """`clean` with the bad character in the middle when this case is about `field`."""
        if field != self.field:
            return clean
        half = len(clean) // 2
        return clean[:half] + BAD + clean[half:]

    def title(self) -> str:
        return f"{self.marker} {self.put('title', f'{self.cls} {self.form} titre')}"

    def link(self) -> str:
        return self.put("link", f"https://news.example.ma/{self.kind}/{self.number}-lien.html")

    def image(self) -> str:
        return self.put("image", f"https://news.example.ma/img/{self.kind}-{self.number}.jpg")

    def paragraphs(self) -> list[str]:
        filler = "Des détails, des chiffres et des citations complètent le récit de la journée. " * 4
        opening = self.put("body", f"Paragraphe d'ouverture numéro {self.number}")
        return [f"{opening}. {filler}", f"Un second paragraphe pour l'article {self.number}. {filler}"]

    def summary(self) -> str:
        return self.put("summary", f"Résumé du cas {self.number}") if self.field == "summary" else ""

    def alt(self) -> str:
        return self.put("alt", f"Photo du cas {self.number}")

    def category(self) -> str:
        return self.put("category", "Économie")

    def author(self) -> str:
        return self.put("author", "Rédaction centrale")

    def when(self) -> datetime:
        return datetime(DAY.year, DAY.month, DAY.day, 7, 0, tzinfo=TZ) + timedelta(minutes=self.number)

    def spell(self, text: str, escape) -> str:
        """The source text with the bad character written in this case's form."""
        char = chr(CLASSES[self.cls])
        return text.replace(BAD, char if self.form == "raw" else escape(CLASSES[self.cls]))


def cases(kind: str) -> list[Case]:
    # (YAML has no escape for a lone surrogate: libyaml calls "\ud800" invalid YAML, see the test below.)
    combos = [(f, c, form) for f in FIELDS_OF[kind] for c in CLASSES for form in FORMS_OF[kind]
              if not (kind == "markdown" and form == "escape" and c.startswith("surrogate"))]
    return [Case(n, kind, f, c, form) for n, (f, c, form) in enumerate(combos, start=1)]


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate as the (invalid) bytes a file would hold


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def xml_ref(code: int) -> str:
    return f"&#x{code:X};"


def json_escape(code: int) -> str:
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def yaml_escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def write_pagedump(folder: Path, items: list[Case]) -> list[Path]:
    lines = []
    for case in items:
        if case.field == "title":
            lines.append(case.spell(f"- {case.when():%H:%M} {case.title()}", None))
        else:
            lines += [case.spell(line, None) for line in (case.title(), *case.paragraphs())]
    path = folder / "page.txt"
    path.write_bytes(encode("\n".join(lines) + "\n"))
    return [path]


def write_rss(folder: Path, items: list[Case]) -> list[Path]:
    entries = []
    for case in items:
        content = xml_text("".join(f"<p>{p}</p>" for p in case.paragraphs()))
        summary = f"<description>{xml_text(case.summary())}</description>" if case.summary() else ""
        entries.append(case.spell(f"""<item><title>{xml_text(case.title())}</title>
<link>{xml_text(case.link())}</link><guid isPermaLink="false">c{case.number}</guid>
<pubDate>{case.when():%a, %d %b %Y %H:%M:%S %z}</pubDate><category>{xml_text(case.category())}</category>
<dc:creator>{xml_text(case.author())}</dc:creator>{summary}<content:encoded>{content}</content:encoded>
<media:content url="{xml_text(case.image())}" medium="image"/></item>
""", xml_ref))
    path = folder / "feed.rss"
    path.write_bytes(encode(f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Cas RSS</title><link>https://news.example.ma/</link><description>cas</description>
{"".join(entries)}</channel></rss>
"""))
    return [path]


def write_atom(folder: Path, items: list[Case]) -> list[Path]:
    entries = []
    for case in items:
        content = xml_text("".join(f"<p>{p}</p>" for p in case.paragraphs()))
        summary = f'<summary type="text">{xml_text(case.summary())}</summary>' if case.summary() else ""
        entries.append(case.spell(f"""<entry><title type="text">{xml_text(case.title())}</title>
<link rel="alternate" href="{xml_text(case.link())}"/><id>tag:news.example.ma,2026:c{case.number}</id>
<published>{case.when().isoformat()}</published><updated>{case.when().isoformat()}</updated>
<category term="{xml_text(case.category())}"/><author><name>{xml_text(case.author())}</name></author>
{summary}<content type="html">{content}</content><media:content url="{xml_text(case.image())}" medium="image"/></entry>
""", xml_ref))
    path = folder / "feed.atom"
    path.write_bytes(encode(f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
<title>Cas Atom</title><id>tag:news.example.ma,2026:cas</id><updated>{DAY.isoformat()}T23:00:00+01:00</updated>
{"".join(entries)}</feed>
"""))
    return [path]


def write_jsonfeed(folder: Path, items: list[Case]) -> list[Path]:
    parts = []
    for case in items:
        entry = {"id": f"c{case.number}", "url": case.link(), "title": case.title(),
                 "content_html": "".join(f"<p>{p}</p>" for p in case.paragraphs()),
                 "date_published": case.when().isoformat(), "image": case.image(), "tags": [case.category()],
                 "authors": [{"name": case.author()}]}
        if case.summary():
            entry["summary"] = case.summary()
        parts.append(case.spell(json.dumps(entry, ensure_ascii=False), json_escape))
    path = folder / "feed.json"
    path.write_bytes(encode('{"version": "https://jsonfeed.org/version/1.1", "title": "Cas", "items": ['
                            + ",\n".join(parts) + "]}\n"))
    return [path]


def write_markdown(folder: Path, items: list[Case]) -> list[Path]:
    paths = []
    for case in items:
        front = {"title": case.title(), "published": case.when().isoformat(), "rubric": case.category(),
                 "url": case.link(), "image": case.image(), "image_alt": case.alt(), "author": case.author()}
        if case.summary():
            front["summary"] = case.summary()
        # A JSON string is a YAML double-quoted one, where \x, \u and \U escapes work too.
        head = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items())
        body = "\n\n".join(case.paragraphs())
        if case.form == "escape":  # the front matter's escapes; a body has none, so its character goes raw
            text = case.spell(f"---\n{head}\n---\n", yaml_escape) + body.replace(BAD, chr(CLASSES[case.cls]))
        else:
            text = case.spell(f"---\n{head}\n---\n{body}\n", None)
        path = folder / f"case-{case.number:03d}.md"
        path.write_bytes(encode(text))
        paths.append(path)
    return paths


WRITERS = {"pagedump": write_pagedump, "rss": write_rss, "atom": write_atom, "jsonfeed": write_jsonfeed,
           "markdown": write_markdown}


def roomy(room: Newsroom) -> None:
    """Every item shown: every article a lead, no rubric cap, no size budget."""

    def everything(text: str) -> str:
        text = text.replace("leads = 2", "leads = 10000").replace("budget_bytes = 100000", "budget_bytes = 50000000")
        text = text.replace("more_max = 25", "more_max = 10000")
        return re.sub(r"max_items = \d+", "max_items = 10000", text)

    room.edit_config(everything)


def sources(room: Newsroom, kind: str, items: list[Case]) -> list[str]:
    folder = room.tmp / f"sources-{kind}"
    folder.mkdir()
    args = []
    for path in WRITERS[kind](folder, items):
        args += ["--source", str(path)]
    return args


@pytest.mark.parametrize("kind", KINDS)
def test_unfit_characters_in_any_field_never_stop_build_or_send(tmp_path, kind):
    room = Newsroom(tmp_path, subscribers=4)
    roomy(room)
    items = cases(kind)
    args = sources(room, kind, items)

    built = room.cli("build", "--out", str(tmp_path / "edition"), *args)
    assert built.returncode == 0, built.stderr
    assert "MJML" not in built.stderr and not unfit_in(built.stderr)
    html = (tmp_path / "edition" / "digest.html").read_text(encoding="utf-8")
    text = (tmp_path / "edition" / "digest.txt").read_text(encoding="utf-8")
    eml_text, eml_html = message_parts((tmp_path / "edition" / "digest.eml").read_bytes())
    for output in (html, text, eml_text, eml_html):
        assert not unfit_in(output.replace("\r\n", "\n"))
    for case in items:  # every item made it; a link, less the character, is the link it was
        assert case.marker in html and case.marker in text, case
        # (Not always the same characters: feedparser reads a C1 control in XML as the cp1252
        # character it almost always was, € for 0x80; a text file's VT is a space.)
        if case.field == "link":
            assert re.search(f'href="https://news[^"]*/{case.number}-lien.html"', html), case

    sent = room.cli("send", *args)
    assert sent.returncode == 0, sent.stderr
    assert not unfit_in(sent.stderr)
    messages = [p.read_bytes() for p in sorted((tmp_path / "outbox").rglob("*.eml"))]
    assert len(messages) == 4
    for data in messages:
        plain, rich = message_parts(data)
        assert not unfit_in(plain.replace("\r\n", "\n")) and not unfit_in(rich)
        head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        assert not unfit_in(head.replace("\r\n", "\n"))
    everything = next(m for m in messages if parse(m)["To"].addresses[0].addr_spec == room.emails[0])
    rich = message_parts(everything)[1]
    assert all(case.marker in rich for case in items)


def test_every_reader_s_items_are_cleaned_even_a_third_party_s():
    """`read` is the one door: a reader that hands on whatever it likes still gives clean items."""
    from digest.pipeline.sources import Fetched, SourceKind, read, registry

    def careless(data: bytes, context: Context):
        return [item("Un titre\x00 avec\x0bde\ud800 tout\ufffe", source=context.spec.name, kind="article",
                     url="https://news.example.ma/a\x85b", body=("Un\x1b[31m paragraphe\x9b",), summary="R\x7fésumé",
                     category="Éco\U0010ffffnomie", author="\x01", image=Image("https://news.example.ma/i\x00.jpg", "Alt\ufdd0")),
                item("\x01\x02", source=context.spec.name)]

    registry()["careless"] = SourceKind("careless", careless)
    try:
        warnings: list[str] = []
        spec = SourceSpec("tiers\x1b[2J", "x", kind="careless")
        [it] = read(Fetched(spec, b""), Context(spec, DAY, TZ, warnings.append))
    finally:
        del registry()["careless"]
    assert (it.title, it.url, it.body, it.summary, it.category, it.author, it.image) == (
        "Un titre avec de tout", "https://news.example.ma/ab", ("Un[31m paragraphe",), "Résumé", "Économie", None,
        Image("https://news.example.ma/i.jpg", "Alt"))
    assert warnings == ["source 'tiers\\x1b[2J': left out 1 item(s) whose title is empty once cleaned"]


def test_a_lone_surrogate_spelt_as_a_yaml_escape_is_named_and_the_edition_goes_out(tmp_path):
    """libyaml refuses "\\ud800" (invalid YAML): that feature is a failed source (exit 1), named with
    the reason; the pure-Python YAML parser reads it, and then the character is cleaned away."""
    import yaml

    room = Newsroom(tmp_path / "room", subscribers=1)
    feature = tmp_path / "feature.md"
    feature.write_text('---\ntitle: "Un titre \\ud800 piégé"\npublished: 2026-11-29T10:00:00+01:00\n---\n'
                       "Un paragraphe de l'article.\n", encoding="utf-8")
    page = tmp_path / "page.txt"
    page.write_text("- 10:00 Une brève du jour\n", encoding="utf-8")
    built = room.cli("build", "--out", str(tmp_path / "edition"), "--source", str(feature), "--source", str(page))
    html = (tmp_path / "edition" / "digest.html").read_text(encoding="utf-8")
    assert "Une brève du jour" in html
    loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    try:
        yaml.load('a: "\\ud800"', Loader=loader)
    except yaml.YAMLError:
        assert built.returncode == 1
        assert (f"digest: error: source '{feature}': front matter is not valid YAML: found invalid Unicode "
                "character escape code (line 2)") in built.stderr.splitlines()
    else:
        assert built.returncode == 0 and "Un titre piégé" in html


def test_a_feed_in_another_encoding_with_a_raw_control_character_is_read_all_the_same():
    """Not UTF-8, so its bytes are left alone: feedparser's lenient parser reads it (with a warning)."""
    data = ('<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
            '<item><title>Économie\x01 : un titre</title><link>https://news.example.ma/a</link>'
            '<pubDate>Sun, 29 Nov 2026 10:00:00 +0100</pubDate></item>'
            '<item><title>Deuxième</title><link>https://news.example.ma/b</link>'
            '<pubDate>Sun, 29 Nov 2026 11:00:00 +0100</pubDate></item></channel></rss>').encode("latin-1")
    warnings: list[str] = []
    from digest.pipeline.sources import Fetched, read

    spec = SourceSpec("latin", "latin.xml", kind="feed")
    items = read(Fetched(spec, data), Context(spec, DAY, TZ, warnings.append))
    assert [i.title for i in items] == ["Économie : un titre", "Deuxième"]
    assert all("\x01" not in w for w in warnings)


@pytest.mark.parametrize("ref", ["&#xD800;", "&#55296;", "&#x110000;", "&#99999999999999999999;", "&#0;"])
def test_character_references_feedparser_cannot_take_are_dropped(ref):
    data = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            f'<item><title>Un {ref} titre</title><link>https://news.example.ma/a{ref}</link>'
            f'<pubDate>Sun, 29 Nov 2026 10:00:00 +0100</pubDate></item></channel></rss>').encode()
    [it] = feed.read(data, Context(SourceSpec("f", "f"), DAY, TZ, lambda w: None))
    assert it.title == "Un titre" and it.url == "https://news.example.ma/a"
