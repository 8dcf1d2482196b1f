"""Content never fills a reader's slot: whatever a source writes, in whatever field, a reader's token
appears only in that reader's unsubscribe and preferences links and List-Unsubscribe header.

Every spelling of a slot (the fixed display slot, the old 44-character placeholder and runs of it,
case variants, percent-encoded and HTML-entity forms, slots nested so that cutting one makes another,
and the very random slot of the run) is put in every field of every source kind, and a real send
(outbox, then aiosmtpd) is read back message by message.
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from digest.core.config import SourceSpec
from digest.core.model import SLOT_TOKEN, Image
from digest.delivery.personalize import Recipient, Template
from digest.pipeline.edition import prepare as prepare_edition
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer
from digest.web import checks
from subscribers.tokens import TOKEN_LENGTH

from support.items import item
from support.mail import parse
from support.newsroom import Newsroom
from support.paths import DAY, TZ, TZ_NAME

OLD_PLACEHOLDER = ("DigestTokenSlot" * 6)[:TOKEN_LENGTH]  # what the previous sender searched the body for
FIELDS = ("link", "title", "body", "summary", "image", "alt", "category", "author")
KINDS = ("pagedump", "rss", "atom", "jsonfeed", "markdown")
# The fields each kind has: a page dump only titles and paragraphs; a feed no alt text (JSON Feed has
# none, and feedparser reads RSS and Atom's media:description as the summary): the title stands in.
FIELDS_OF = {"pagedump": ("title", "body"), **{k: tuple(f for f in FIELDS if f != "alt") for k in ("rss", "atom", "jsonfeed")}}


def variants(slot: str) -> dict[str, str]:
    """Every spelling of a slot a source could try; `slot` is the run's own random one."""
    return {
        "fixed": SLOT_TOKEN,
        "nested-fixed": "__DIGEST__DIGEST_TOKEN__TOKEN__",
        "old-placeholder": OLD_PLACEHOLDER,
        "old-placeholder-short": OLD_PLACEHOLDER[:-1],
        "old-placeholder-long": ("DigestTokenSlot" * 4)[:TOKEN_LENGTH + 1],
        "old-placeholder-double": ("DigestTokenSlot" * 6)[:2 * TOKEN_LENGTH],
        "old-placeholder-upper": OLD_PLACEHOLDER.upper(),
        "old-placeholder-lower": OLD_PLACEHOLDER.lower(),
        "lower": SLOT_TOKEN.lower(),
        "mixed-case": "__Digest_Token__",
        "percent": "%5F%5FDIGEST_TOKEN%5F%5F",
        "percent-lower": "%5f%5fDIGEST_TOKEN%5f%5f",
        "percent-all": "".join(f"%{ord(c):02X}" for c in SLOT_TOKEN),
        "entity-decimal": "&#95;&#95;DIGEST_TOKEN&#95;&#95;",
        "entity-hex": "&#x5F;&#x5F;DIGEST_TOKEN&#x5F;&#x5F;",
        "entity-named": "&lowbar;&lowbar;DIGEST_TOKEN&lowbar;&lowbar;",
        "run-slot": slot,
        "run-slot-nested": slot[:22] + slot + slot[22:],
        "run-slot-swapcase": slot.swapcase(),
    }


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    field: str
    variant: str
    text: str

    @property
    def marker(self) -> str:
        """Words that find the item's title in the email, whatever the variant did to the rest."""
        return f"Cas {self.kind} {self.number:03d}"

    def title(self) -> str:
        return f"{self.marker} {self.text}" if self.field == "title" else f"{self.marker} {self.variant}"

    def link(self) -> str:
        if self.field == "link":
            return f"https://evil.example/collect/{self.number}?t={self.text}"
        return f"https://news.example.ma/{self.kind}/{self.number}.html"

    def image(self) -> str:
        if self.field == "image":
            return f"https://evil.example/img/{self.number}/{self.text}.jpg"
        return f"https://news.example.ma/img/{self.kind}/{self.number}.jpg"

    def paragraphs(self) -> list[str]:
        opening = f"Paragraphe d'ouverture {self.number} " + (self.text if self.field == "body" else "sans surprise")
        filler = "Des détails, des chiffres et des citations complètent le récit de la journée. " * 4
        return [f"{opening}. {filler}", f"Un second paragraphe pour l'article {self.number}. {filler}"]

    def summary(self) -> str:
        return f"Résumé {self.number} : {self.text}" if self.field == "summary" else ""

    def alt(self) -> str:
        return f"Photo {self.number} {self.text}" if self.field == "alt" else f"Photo {self.number}"

    def category(self) -> str:
        return self.text if self.field == "category" else "Économie"

    def author(self) -> str:
        return f"Auteur {self.text}" if self.field == "author" else "Rédaction"

    def when(self) -> datetime:
        return datetime(DAY.year, DAY.month, DAY.day, 7, 0, tzinfo=TZ) + timedelta(minutes=self.number)


def cases(kind: str, slot: str) -> list[Case]:
    fields = FIELDS_OF.get(kind, FIELDS)
    pairs = [(f, name, text) for f in fields for name, text in variants(slot).items()]
    return [Case(n, kind, f, name, text) for n, (f, name, text) in enumerate(pairs, start=1)]


# --- one source file per kind (one file per item for Markdown) -----------------------------------------


def write_pagedump(folder: Path, items: list[Case]) -> list[Path]:
    lines = []
    for case in items:
        if case.field == "title":  # a timed brief
            lines.append(f"- {case.when():%H:%M} {case.title()}")
        else:  # an article: its title, then its paragraphs
            lines += [case.title(), *case.paragraphs()]
    path = folder / "page.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [path]


def write_rss(folder: Path, items: list[Case]) -> list[Path]:
    entries = []
    for case in items:
        content = "".join(f"<p>{escape(p)}</p>" for p in case.paragraphs())
        entries.append(f"""<item>
  <title>{escape(case.title())}</title>
  <link>{escape(case.link())}</link>
  <guid isPermaLink="false">case-{case.number}</guid>
  <pubDate>{case.when():%a, %d %b %Y %H:%M:%S %z}</pubDate>
  <category>{escape(case.category())}</category>
  <dc:creator>{escape(case.author())}</dc:creator>
  {f"<description>{escape(case.summary())}</description>" if case.summary() else ""}
  <content:encoded>{escape(content)}</content:encoded>
  <media:content url={quoteattr(case.image())} medium="image" type="image/jpeg"/>
</item>""")
    path = folder / "feed.rss"
    path.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>Cas RSS</title><link>https://news.example.ma/</link><description>cas</description>
{"".join(entries)}
</channel></rss>
""", encoding="utf-8")
    return [path]


def write_atom(folder: Path, items: list[Case]) -> list[Path]:
    entries = []
    for case in items:
        content = "".join(f"<p>{escape(p)}</p>" for p in case.paragraphs())
        entries.append(f"""<entry>
  <title type="text">{escape(case.title())}</title>
  <link rel="alternate" href={quoteattr(case.link())}/>
  <id>tag:news.example.ma,2026:case-{case.number}</id>
  <published>{case.when().isoformat()}</published>
  <updated>{case.when().isoformat()}</updated>
  <category term={quoteattr(case.category())}/>
  <author><name>{escape(case.author())}</name></author>
  {f'<summary type="text">{escape(case.summary())}</summary>' if case.summary() else ""}
  <content type="html">{escape(content)}</content>
  <media:content url={quoteattr(case.image())} medium="image"/>
</entry>""")
    path = folder / "feed.atom"
    path.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
<title>Cas Atom</title><id>tag:news.example.ma,2026:cases</id><updated>{DAY.isoformat()}T23:00:00+01:00</updated>
{"".join(entries)}
</feed>
""", encoding="utf-8")
    return [path]


def write_jsonfeed(folder: Path, items: list[Case]) -> list[Path]:
    feed_items = []
    for case in items:
        entry = {
            "id": f"case-{case.number}",
            "url": case.link(),
            "title": case.title(),
            "content_html": "".join(f"<p>{p}</p>" for p in case.paragraphs()),
            "date_published": case.when().isoformat(),
            "image": case.image(),
            "tags": [case.category()],
            "authors": [{"name": case.author()}],
        }
        if case.summary():
            entry["summary"] = case.summary()
        feed_items.append(entry)
    path = folder / "feed.json"
    path.write_text(json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Cas JSON",
                                "items": feed_items}, ensure_ascii=False), encoding="utf-8")
    return [path]


def yaml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted string


def write_markdown(folder: Path, items: list[Case]) -> list[Path]:
    paths = []
    for case in items:
        front = {"title": case.title(), "published": case.when().isoformat(), "rubric": case.category(),
                 "url": case.link(), "image": case.image(), "image_alt": case.alt(), "author": case.author()}
        if case.summary():
            front["summary"] = case.summary()
        lines = ["---", *(f"{key}: {yaml_string(value)}" for key, value in front.items()), "---", ""]
        path = folder / f"case-{case.number:03d}.md"
        path.write_text("\n".join(lines) + "\n\n".join(case.paragraphs()) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


WRITERS = {"pagedump": write_pagedump, "rss": write_rss, "atom": write_atom, "jsonfeed": write_jsonfeed,
           "markdown": write_markdown}


def field_of(it, field: str) -> str:
    """The text a read item holds for a case's field."""
    return {
        "link": it.url or "", "title": it.title, "body": " ".join(it.body), "summary": it.summary,
        "image": it.image.url if it.image else "", "alt": it.image.alt if it.image else "",
        "category": it.category or "", "author": it.author or "",
    }[field]


# --- a newsroom whose every item shows in the email -----------------------------------------------------


def newsroom(tmp: Path, kind: str) -> Newsroom:
    """Four readers (four variants); every article a lead (image, title, excerpt, link, all shown),
    no rubric cap, no size budget: nothing a source wrote is left out of the email."""
    room = Newsroom(tmp, subscribers=4)
    s = room.settings
    room.settings = replace(
        s,
        ranking=replace(s.ranking, leads=10_000),
        layout=replace(s.layout, budget_bytes=50_000_000, more_max=10_000),
        rubrics=tuple(replace(r, max_items=10_000) for r in s.rubrics),
    )
    return room


def prepare(room: Newsroom, kind: str, **sender_options):
    """The Sender first (its slot is the run's), then the sources written with that slot in them,
    then the edition the Sender will send."""
    sender = room.sender(**sender_options)  # constructed on the example edition; its slot is what counts
    slot = sender.slot
    assert len(slot) == TOKEN_LENGTH and set(slot) <= set(string.ascii_letters + string.digits)
    folder = room.tmp / f"sources-{kind}"
    folder.mkdir()
    items = cases(kind, slot)
    paths = WRITERS[kind](folder, items)
    specs = tuple(SourceSpec(name=f"{kind}-{i}", location=str(p), featured=True) for i, p in enumerate(paths))
    room.settings = replace(room.settings, sources=specs)
    made = prepare_edition(room.settings, DAY)
    assert not made.gathered.errors, made.gathered.errors
    by_marker = {c.marker: c for c in items}
    read = {m: it for it in made.gathered.items for m in [" ".join(it.title.split()[:3])] if m in by_marker}
    assert set(read) == set(by_marker), sorted(set(by_marker) - set(read))[:5]
    for marker, case in by_marker.items():  # the variant really is in the field the case names
        probe = {"run-slot": case.text[:12], "percent-all": "%44%49%47%45%53%54"}.get(case.variant.removesuffix(
            "-nested").removesuffix("-swapcase"), "digest")
        assert probe.casefold() in field_of(read[marker], case.field).casefold(), (case, read[marker])
    sender.day_edition = made
    sender.composer.edition = made.edition
    return sender, items


def subscriber_tokens(room: Newsroom) -> dict[str, str]:
    return {s.email: room.tokens.make(s.id) for s in room.store.iter_subscribers(status="active")}


def assert_only_own_tokens(room: Newsroom, messages: list[bytes], items: list[Case]) -> None:
    tokens = subscriber_tokens(room)
    base = room.settings.newsletter.base_url
    assert sorted(parse(m)["To"].addresses[0].addr_spec for m in messages) == sorted(tokens)
    for data in messages:
        msg = parse(data)
        own = tokens[msg["To"].addresses[0].addr_spec]
        others = [t for t in tokens.values() if t != own]
        unfolded = data.replace(b"=\r\n", b"")  # quoted-printable soft breaks would hide a token
        for token in others:
            assert token.encode() not in unfolded
        for name, value in msg.items():
            if name.lower() != "list-unsubscribe":
                assert own not in str(value), name
        assert f"<{base}/unsubscribe/{own}>" in str(msg["List-Unsubscribe"])
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for part, before in ((text, ("/unsubscribe/", "/preferences/")),
                             (html, ('href="' + base + "/unsubscribe/", 'href="' + base + "/preferences/"))):
            places = [m.start() for m in re.finditer(re.escape(own), part)]
            assert len(places) == 2, f"the token is in {len(places)} places: " + " | ".join(
                part[max(0, p - 60):p + 50] for p in places)
            assert part[:places[0]].endswith(before[0]) and part[:places[1]].endswith(before[1])
        assert "__DIGEST_TOKEN__" not in text + html
    # The test shows what it claims: the reader of every rubric got every item, hostile links included.
    everything = next(parse(m) for m in messages if parse(m)["To"].addresses[0].addr_spec == room.emails[0])
    html = everything.get_body(("html",)).get_content()
    for case in items:
        assert case.marker in html, case
    if any(case.field in ("link", "image") for case in items):
        assert "evil.example" in html  # the links that hold no slot are kept


def outbox_messages(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.rglob("*.eml"))]


@pytest.mark.parametrize("kind", KINDS)
def test_no_source_field_can_fill_a_slot_outbox(tmp_path, kind):
    room = newsroom(tmp_path, kind)
    sender, items = prepare(room, kind, outbox=tmp_path / "outbox")
    report = sender.run()
    assert report.ok and report.outcomes["sent"] == 4 and not sender.skipped
    assert_only_own_tokens(room, outbox_messages(tmp_path / "outbox"), items)


@pytest.mark.parametrize("kind", KINDS)
def test_no_source_field_can_fill_a_slot_smtp(tmp_path, kind, smtp_server):
    room = newsroom(tmp_path, kind)
    room.with_smtp(smtp_server.port)
    sender, items = prepare(room, kind)
    report = sender.run()
    assert report.ok and report.outcomes["sent"] == 4
    assert_only_own_tokens(room, [m.data for m in smtp_server.handler.messages], items)


# --- the pieces -------------------------------------------------------------------------------------------


def test_each_sender_has_its_own_random_slot_and_build_keeps_the_display_slot(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)
    a, b = room.sender(), room.sender()
    assert a.slot != b.slot and len(a.slot) == TOKEN_LENGTH
    rendered = a.renderer.render(room.day_edition.edition)
    assert rendered.slot == a.slot and SLOT_TOKEN not in rendered.html + rendered.text
    assert rendered.html.count(a.slot) == 2 and rendered.text.count(a.slot) == 2
    shown = Renderer(room.settings).render(room.day_edition.edition)
    assert shown.slot == SLOT_TOKEN and shown.html.count(SLOT_TOKEN) == 2
    # The check finds the unsubscribe link through the rendering's own slot.
    assert next(c for c in checks.run(rendered) if c.name == "unsubscribe").ok


def _edition_with(settings, **fields):
    article = item("Article de une", kind="article", featured=True, url="https://news.example.ma/a",
                   image=Image("https://news.example.ma/a.jpg", "Photo"), **fields)
    return rank([article], settings, DAY, TZ_NAME)


@pytest.mark.parametrize("slot", [SLOT_TOKEN, "Ab3" * 14 + "xy"])
def test_views_take_every_slot_out_of_content(example_settings, slot):
    renderer = Renderer(example_settings, slot=slot)
    for text in (slot, SLOT_TOKEN, "__DIGEST__DIGEST_TOKEN__TOKEN__", slot[:5] + slot + slot[5:]):
        edition = rank([item(f"Titre {text} fin", kind="article", featured=True, summary=f"Résumé {text}",
                             url=f"https://evil.example/?t={text}",
                             image=Image(f"https://evil.example/{text}.jpg", f"Alt {text}"))],
                       example_settings, DAY, TZ_NAME)
        view = renderer._item(edition.leads[0], "fr", "https://archive.example/x.html", TZ)
        for shown in (view.title, view.excerpt):
            assert slot not in shown and SLOT_TOKEN not in shown
        if text in (slot, SLOT_TOKEN):
            assert (view.title, view.excerpt) == ("Titre fin", "Résumé")
        assert view.href == f"https://archive.example/x.html#a-{edition.leads[0].item.id}"  # the archive, not the feed's link
        assert view.image is None
    edition = rank([item("Titre", kind="article", featured=True, url="https://news.example.ma/a",
                         image=Image("https://news.example.ma/a.jpg", f"{slot}"))], example_settings, DAY, TZ_NAME)
    view = renderer._item(edition.leads[0], "fr", "https://archive.example/x.html", TZ)
    assert view.image == Image("https://news.example.ma/a.jpg", "Titre")  # an alt left empty: the title stands in


def test_a_percent_encoded_slot_in_a_link_drops_the_link(example_settings):
    renderer = Renderer(example_settings)
    edition = rank([item("Titre", url="https://evil.example/?t=%5F%5FDIGEST_TOKEN%5F%5F")], example_settings, DAY, TZ_NAME)
    view = renderer._item(edition.items[0], "fr", "https://archive.example/x.html", TZ)
    assert view.href is None and view.title == "Titre"


def test_the_template_refuses_an_encoded_body_whose_slots_do_not_match_the_rendering():
    from digest.core.model import Rendered, Variant

    html = f'<p><a href="https://x.example/unsubscribe/{SLOT_TOKEN}">désabonner</a></p>'
    rendered = Rendered(Variant(), "Sujet", "Avant-texte", html, f"https://x.example/unsubscribe/{SLOT_TOKEN}\n")
    tpl = Template(rendered, sender="Le Quotidien <digest@lequotidien.example.ma>", edition_key="q-2026-11-29",
                   list_id="q.example.ma", list_name="Q", base_url="https://x.example", token_length=TOKEN_LENGTH)
    assert tpl.placeholder != SLOT_TOKEN and len(tpl.placeholder) == TOKEN_LENGTH
    tpl.fill(Recipient(1, "a@example.com", "", "0" * TOKEN_LENGTH))  # the real one is fine
    body = b"\r\n" + tpl.placeholder.encode() + b"\r\n"  # one slot where the rendering has two
    with pytest.raises(ValueError, match="1 slots where the rendering has 2"):
        tpl._split(body)
    three = b"\r\n" + b" ".join([tpl.placeholder.encode()] * 3) + b"\r\n"
    with pytest.raises(ValueError, match="3 slots where the rendering has 2"):
        tpl._split(three)

