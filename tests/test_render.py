"""The rendered email, parsed back: the rules a subscriber's mail app and Gmail rely on."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from digest.core.config import defaults
from digest.core.model import Variant
from digest.pipeline.edition import prepare
from digest.pipeline.rank import rank
from digest.pipeline.render import SLOT_TOKEN, Renderer
from digest.pipeline.typography import typeset

from support.items import day_of, item, parse
from support.paths import DAY, TZ_NAME


@pytest.fixture(scope="module")
def example(request):
    from digest.core.config import load

    from support.paths import EXAMPLES

    settings = load(EXAMPLES / "digest.toml")
    made = prepare(settings, DAY)
    rendered = Renderer(settings).render(made.edition)
    return settings, made, rendered, parse(rendered.html)


def test_html_is_a_standards_mode_document_with_lang_and_dir(example):
    _, _, rendered, root = example
    assert rendered.html.lower().startswith("<!doctype html>")
    assert root.get("lang") == "fr" and root.get("dir") == "ltr"


def test_date_is_written_out_in_the_locale(example):
    _, _, rendered, root = example
    assert "dimanche 29 novembre 2026" in root.text_content()
    assert "dimanche 29 novembre 2026" in rendered.text


def test_preheader_comes_first_in_the_body_and_not_in_the_text_twin(example):
    _, _, rendered, root = example
    first = root.find("body")[0]
    assert "display:none" in first.get("style").replace(" ", "")
    assert first.text_content().strip() == rendered.preheader
    assert rendered.preheader and rendered.preheader not in rendered.text.split("\n")[0:3]


def test_one_h1_and_the_lead_story_is_the_first_heading_after_it(example):
    _, made, _, root = example
    assert len(root.findall(".//h1")) == 1
    headings = [h.text_content().strip() for h in root.iter("h1", "h2", "h3")]
    assert headings[1] == made.edition.leads[0].item.title == "Bourita et Blinken renforcent les liens Maroco-Américains à Washington"
    lead_block = root.xpath("//h2[contains(@class,'lead-title')]/following-sibling::p[1]")[0].text_content()
    assert lead_block.startswith("Le ministre des Affaires étrangères")


def test_each_rubric_is_a_section_in_the_newsroom_order(example):
    settings, made, _, root = example
    titles = [h.text_content().strip() for h in root.xpath("//h2[contains(@class,'rubric-title')]")]
    order = [r.label for r in settings.rubrics]
    shown = [t for t in titles if t in order]
    assert shown == [r.label for r in settings.rubrics if any(s.rubric == r.key for s in made.edition.sections)]
    assert len(shown) >= 6


def test_briefs_are_a_time_and_title_list(example):
    _, _, _, root = example
    rows = root.xpath("//table[contains(@class,'briefs')]//tr")
    assert len(rows) >= 20
    cells = [[td.text_content().strip() for td in row.findall("td")] for row in rows]
    assert all(re.fullmatch(r"\d\d:\d\d", time) for time, _ in cells)
    assert ["19:30", "Légère progression à la Bourse de Casablanca malgré des indices mitigés"] in cells


def test_no_google_fonts_no_http_no_relative_links(example):
    _, _, rendered, root = example
    assert "fonts.googleapis.com" not in rendered.html and "@import" not in rendered.html
    links = [a.get("href") for a in root.iter("a")] + [img.get("src") for img in root.iter("img")]
    assert links, "the email has links"
    for link in links:
        assert link.startswith(("https://", "mailto:")), link


def test_the_legacy_http_link_is_upgraded_not_dropped(example):
    _, _, _, root = example
    hrefs = {a.text_content().strip(): a.get("href") for a in root.iter("a")}
    title = next(t for t in hrefs if t.startswith(typeset("Cinéma : un documentaire sur les artisans de Fès", "fr")))
    assert hrefs[title].startswith("https://")


def test_every_image_has_alt_text():
    settings = defaults()
    edition = rank(day_of(12, ["actualite"], with_images=True), settings, DAY, TZ_NAME)
    root = parse(Renderer(settings).render(edition).html)
    images = root.findall(".//img")
    assert images and all(img.get("alt") for img in images)


def test_body_text_is_at_least_14px(example):
    _, _, _, root = example
    from digest.web.checks import (
        text_runs,  # the inline styles followed down the tree, as a mail app does
    )

    sizes = [(run.size, run.text) for run in text_runs(root)]
    assert len(sizes) > 100
    small = [(size, text) for size, text in sizes if size < 14]
    assert not small, small[:5]


def test_dark_mode_and_responsive_rules_survive_inlining(example):
    _, _, rendered, root = example
    assert root.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert "prefers-color-scheme: dark" in rendered.html
    # MJML's desktop column widths need their !important (premailer must not strip it).
    assert re.search(r"@media only screen and \(min-width: ?480px\) \{[^}]*!important", rendered.html)
    # Inlined: the masthead's style sits on the element itself.
    h1 = root.find(".//h1")
    assert "font-size:28px" in h1.get("style").replace(" ", "")


def test_footer_has_the_unsubscribe_placeholder_in_both_parts(example):
    settings, _, rendered, root = example
    expected = f"{settings.newsletter.base_url}/unsubscribe/{SLOT_TOKEN}"
    assert expected in [a.get("href") for a in root.iter("a")]
    assert expected in rendered.text


def test_text_twin_has_every_item_and_no_html(example):
    _, made, rendered, _ = example
    for section in made.edition.sections:
        for ranked in section.items:
            assert typeset(ranked.item.title, ranked.item.lang) in rendered.text  # as French typography sets it
    assert "<p" not in rendered.text and "<a " not in rendered.text and "&amp;" not in rendered.text


def test_hostile_feed_html_never_reaches_the_email(example):
    _, _, rendered, root = example
    lowered = rendered.html.lower()
    for bad in ("<script", "javascript:", "onerror", "onclick", "<iframe", "<form", "data:text"):
        assert bad not in lowered, bad
    assert "Cybersécurité\u00a0: la DGSSI alerte" in root.text_content()


def test_titles_are_escaped_not_interpreted():
    settings = defaults()
    edition = rank([item("Tom & Jerry <b>gras</b> \"cité\"", url="https://x.example/1")], settings, DAY, TZ_NAME)
    rendered = Renderer(settings).render(edition)
    root = parse(rendered.html)
    assert root.find(".//b") is None
    assert "Tom & Jerry <b>gras</b> «\u202fcité\u202f»" in root.text_content()  # French quotes, set by typography


def test_example_edition_is_under_the_budget(example):
    _, _, rendered, _ = example
    assert rendered.html_bytes < 100_000
    assert rendered.moved_to_more == 0


def test_a_200_item_day_fits_by_moving_the_lowest_ranked_to_more_on_the_web():
    settings = replace(defaults(), rubrics=defaults().rubrics)
    rubric = replace(settings.rubrics[0], max_items=500)
    settings = replace(settings, rubrics=(rubric,))
    items = day_of(200, ["actualite"], with_images=True)
    edition = rank(items, settings, DAY, TZ_NAME)
    rendered = Renderer(settings).render(edition)
    assert rendered.html_bytes <= 100_000
    assert rendered.moved_to_more > 0
    assert any("moved to 'more on the web'" in w for w in rendered.warnings)
    root = parse(rendered.html)
    shown = {a.text_content().strip() for a in root.xpath("//table[contains(@class,'briefs')]//a | //h3//a")}
    more = [a.text_content().strip() for a in root.xpath("//ul[contains(@class,'more-list')]//a")]
    assert 0 < len(more) <= settings.layout.more_max
    # What stayed in the sections outranks everything that moved out.
    by_title = {typeset(r.item.title, "fr"): r for r in edition.items}
    from digest.core.model import order_key

    worst_shown = max(order_key(by_title[t]) for t in shown)
    best_moved = min(order_key(by_title[t]) for t in more)
    assert worst_shown < best_moved
    # The unsubscribe link is there, before Gmail's clipping point.
    assert rendered.html.find(f"/unsubscribe/{SLOT_TOKEN}") < 100_000


def test_variant_with_chosen_rubrics_keeps_the_lead_and_only_those_sections(example):
    settings, made, _, _ = example
    rendered = Renderer(settings).render(made.edition, Variant("fr", frozenset({"economie", "sport"})))
    root = parse(rendered.html)
    titles = [h.text_content().strip() for h in root.xpath("//h2[contains(@class,'rubric-title')]")]
    assert titles[:2] == ["Économie", "Sport"] and titles[2:] in ([], ["Plus sur le web"])
    assert made.edition.leads[0].item.title in root.text_content()
    rubric_of = {typeset(r.item.title, r.item.lang): r.rubric for r in made.edition.items}
    for link in root.xpath("//ul[contains(@class,'more-list')]//a"):
        assert rubric_of[link.text_content().strip()] in {"economie", "sport"}


def test_english_variant_uses_english_strings_and_dates(example):
    settings, made, _, _ = example
    rendered = Renderer(settings).render(made.edition, Variant("en"))
    root = parse(rendered.html)
    assert root.get("lang") == "en"
    assert "Sunday, November 29, 2026" in root.text_content()
    assert "Unsubscribe" in root.text_content() and "Read more" in root.text_content()
    assert "Economy" in [h.text_content().strip() for h in root.xpath("//h2[contains(@class,'rubric-title')]")]


def test_a_day_with_no_news_still_renders():
    settings = defaults()
    rendered = Renderer(settings).render(rank([], settings, DAY, TZ_NAME))
    assert "Pas d’actualité aujourd’hui." in rendered.text
    assert "Pas d’actualité aujourd’hui." in parse(rendered.html).text_content()


def test_a_theme_folder_overrides_one_template(tmp_path, example):
    settings, made, _, _ = example
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt.j2").write_text("Édition spéciale — {{ date_long }}", encoding="utf-8")
    rendered = Renderer(replace(settings, theme=tmp_path)).render(made.edition)
    assert rendered.subject == "Édition spéciale — dimanche 29 novembre 2026"
    assert "<h1" in rendered.html  # the rest of the theme is still the built-in one


def test_css_inlining_never_touches_the_network(feed_server, example):
    """premailer's allow_network=False is not enough (cssutils fetches @import by itself): the
    renderer cuts @import first. A real server counts any request."""
    from digest.pipeline.render import inline_css

    hits = []
    feed_server._handler.routes.clear()
    original = feed_server._handler.do_GET

    def counting(handler):
        hits.append(handler.path)
        return original(handler)

    feed_server._handler.do_GET = counting
    url = feed_server.url("theme.css")
    html = ("<!doctype html><html><head><style>@import url('" + url + "'); @import \"" + url + "\";"
            " p { color: #111111; }</style></head><body><p>Bonjour</p></body></html>")
    out = inline_css(html)
    assert hits == []
    assert "@import" not in out
    assert '<p style="color:#111">Bonjour</p>' in out  # inlined all the same
    assert out.lower().startswith("<!doctype html>")


def test_a_broken_theme_template_is_named_with_its_line(tmp_path, example):
    from digest.core.errors import DigestError

    settings, made, _, _ = example
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt.j2").write_text("{{ newsletter.name }\n", encoding="utf-8")
    with pytest.raises(DigestError, match=r"subject\.txt\.j2, line 1"):
        Renderer(replace(settings, theme=tmp_path)).render(made.edition)
