"""What Outlook, iOS, screen readers and a reader's inbox get: pixel image sizes, CSS that the major
clients honour, data-detector resets, content marked with its language, regional dates, the subject."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from digest.core.config import load
from digest.core.errors import ConfigError
from digest.core.model import Variant
from digest.pipeline import i18n, languages
from digest.pipeline.colors import contrast, parse_color
from digest.pipeline.edition import prepare
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer
from digest.pipeline.render.views import DARK_CARD, cut_subject
from digest.web import checks

from support.items import item, parse
from support.paths import DAY, EXAMPLES, ROOT, TZ_NAME


@pytest.fixture(scope="module")
def example():
    settings = load(EXAMPLES / "digest.toml")
    return settings, prepare(settings, DAY).edition


def render(example, language="fr", rubrics=None, **news):
    settings, edition = example
    if news:
        settings = replace(settings, newsletter=replace(settings.newsletter, **news))
    return Renderer(settings).render(edition, Variant(language, rubrics))


def test_images_keep_pixel_sizes_for_outlook(example):
    root = parse(render(example).html)
    logo, photo = root.findall(".//img")
    assert (logo.get("width"), logo.get("height")) == ("180", "48")
    assert (photo.get("width"), photo.get("height")) == ("600", "338")  # 1200 × 675 drawn 600 wide
    assert "width:100%" in photo.get("style").replace(" ", "")  # phones still scale it down
    day = rank([item("Sans taille", kind="article", featured=True, url="https://news.example.ma/a",
                     image=__import__("digest.core.model", fromlist=["Image"]).Image("https://news.example.ma/a.jpg", "Photo"))],
               example[0], DAY, TZ_NAME)
    unsized = parse(Renderer(example[0]).render(day).html).findall(".//img")[1]
    assert unsized.get("width") == "600" and unsized.get("height") is None  # no size known: none made up


_PROPERTY = re.compile(r"(?<![-\w])([a-z-]+)\s*:(?!\s*(?:before|after|hover))")


def test_every_css_property_of_the_layout_is_listed_with_its_clients_and_none_is_ignored_by_them():
    sheet = (ROOT / "templates" / "email" / "style.css").read_text(encoding="utf-8")
    comment = sheet[: sheet.index("*/")]
    rules = re.sub(r"/\*.*?\*/", "", sheet, flags=re.S)
    used = {p for block in re.findall(r"\{([^{}]*)\}", rules) for p in _PROPERTY.findall(block)}
    used = {re.sub(r"\{\{.*", "", p) for p in used} - {""}
    for name in ("Outlook", "Gmail", "Yahoo"):
        assert name in comment
    for prop in used:
        family = prop.split("-")[0] if prop.startswith(("padding-", "margin-", "text-", "font-", "border-")) else prop
        assert prop in comment or family in comment, f"{prop} is not in the stylesheet's list of supported properties"
    html = render((load(EXAMPLES / "digest.toml"), prepare(load(EXAMPLES / "digest.toml"), DAY).edition)).html
    for ignored in ("padding-inline", "margin-inline", "inset-inline", "-block-start", "-block-end"):
        assert ignored not in html, ignored


def test_ios_data_detectors_are_reset(example):
    html = render(example).html
    root = parse(html)
    assert root.xpath("//meta[@name='format-detection']/@content") == ["telephone=no, date=no, address=no, email=no, url=no"]
    assert "a[x-apple-data-detectors]" in html and "data-premailer" not in html


def test_dark_mode_tints_each_rubric_and_the_check_reads_dark_mode(example):
    html = render(example).html
    for rubric in example[0].rubrics:
        tint = re.search(rf"\.tint-{rubric.key} \{{\s*color: (#[0-9a-f]{{6}}) !important", html)
        assert tint, rubric.key
        assert contrast(parse_color(tint[1]), parse_color(DARK_CARD)) >= 4.5
    # A dark block that leaves a faint title and a button that melts into its card: the check says so.
    faint = html.replace(".tint-politique {\n        color: ", ".tint-politique {\n        color: #2a2d33; x: ", 1)
    faint = re.sub(r"(\.button table td, \.button a \{\s*background:) #9cc3ff", r"\1 #1d3557", faint)
    found = next(c for c in checks.run(replace(render(example), html=faint)) if c.name == "contrast")
    assert not found.ok
    assert any(d.startswith("dark mode: ") and "Politique" in d for d in found.details)
    assert any(d.startswith("dark mode: 1.2") and "button" in d for d in found.details)
    assert next(c for c in checks.run(render(example)) if c.name == "contrast").ok


def test_content_carries_the_language_of_its_source(example):
    english = parse(render(example, "en").html)
    title = english.xpath("//h2[contains(@class,'lead-title')]")[0]
    assert (title.get("lang"), title.get("dir")) == ("fr", "ltr")
    assert english.xpath("//td[contains(@class,'brief')]")[0].get("lang") == "fr"
    assert all(h.get("lang") is None for h in english.xpath("//h2[contains(@class,'rubric-title')]"))  # its own strings
    french = parse(render(example, "fr").html)
    assert not french.xpath("//*[@lang and not(self::html) and not(self::div[@role='article'])]")
    arabic = parse(render(example, "ar").html)
    excerpt = arabic.xpath("//p[contains(@class,'lead-excerpt')]")[0]
    assert excerpt.get("lang") == "fr" and "text-align:left" in excerpt.get("style").replace(" ", "")


def test_a_source_says_its_language_or_it_is_detected():
    english = item("Stocks rally as inflation cools across the region", summary="Investors welcomed the figures.")
    short = item("Immo Expo By Avito 2025")
    french = item("Le gouvernement adopte le projet de loi de finances pour l’année prochaine")
    out = languages.assign([english, short, french, french], None, "ar")
    assert [i.lang for i in out] == ["en", "fr", "fr", "fr"]  # the short title takes its source's language
    assert [i.lang for i in languages.assign([short], None, "ar")] == ["ar"]  # nothing sure: the newsletter's
    assert {i.lang for i in languages.assign([english, short], "es")} == {"es"}  # the source's word wins


def test_lang_on_a_source_in_digest_toml(tmp_path):
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8").replace('path = "', f'path = "{EXAMPLES}/')
    (tmp_path / "digest.toml").write_text(text.replace('lang = "fr"', 'lang = "fr-MA"'), encoding="utf-8")
    assert load(tmp_path / "digest.toml").sources[0].lang == "fr"
    (tmp_path / "digest.toml").write_text(text.replace('lang = "fr"', 'lang = "xx-bogus"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\[Page d'accueil\]\.lang"):
        load(tmp_path / "digest.toml")


@pytest.mark.parametrize(("locale", "long", "short"), [
    ("fr", "dimanche 29 novembre 2026", "29 novembre"),
    ("en", "Sunday, November 29, 2026", "November 29"),
    ("en-GB", "Sunday, 29 November 2026", "29 November"),
    ("ar", "الأحد، 29 نوفمبر 2026", "29 نوفمبر"),
    ("ar-MA", "الأحد، 29 نونبر 2026", "29 نونبر"),
])
def test_regional_locales_write_the_region_s_dates_and_the_subject_as_the_masthead(example, locale, long, short):
    rendered = render(example, locale, subject_brand=True, locale=locale)
    root = parse(rendered.html)
    assert root.get("lang") == locale
    assert long in root.xpath("//p[contains(@class,'masthead-date')]")[0].text_content()
    assert rendered.subject.startswith(f"Le Quotidien · {short} — ") and short in long


def test_regional_locales_in_digest_toml(tmp_path):
    text = (EXAMPLES / "ar" / "digest.toml").read_text(encoding="utf-8")
    (tmp_path / "digest.toml").write_text(text.replace('locale = "ar-MA"', 'locale = "ar_ma"'), encoding="utf-8")
    assert load(tmp_path / "digest.toml").newsletter.locale == "ar-MA"
    (tmp_path / "digest.toml").write_text(text.replace('locale = "ar-MA"', 'locale = "ar-XX"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="newsletter.locale"):
        load(tmp_path / "digest.toml")
    assert i18n.translations("ar-MA").gettext("Unsubscribe") == "إلغاء الاشتراك"  # the language's catalog


def test_the_subject_leads_with_the_lead_story_cut_at_a_word(example):
    rendered = render(example)
    assert rendered.subject == "Bourita et Blinken renforcent les liens Maroco-Américains à Washington"
    assert "Le Quotidien" not in rendered.subject and rendered.subject not in rendered.preheader
    long = "Bourita et Blinken renforcent les liens Maroco-Américains à Washington pour une nouvelle étape"
    assert cut_subject(long) == "Bourita et Blinken renforcent les liens Maroco-Américains à Washington…"  # not "pour…"
    cut = cut_subject("Accord agricole : le Maroc et l’Union européenne renforcent leurs liens à Bruxelles ce soir")
    assert len(cut) < 78 and cut.endswith(" leurs liens…"), cut  # the word cut falls on "à": not "… liens à…"
    cut = cut_subject("Le Quotidien · 29 novembre — Accord : le Maroc et l’UE signent un texte sur la pêche à Bruxelles")
    assert cut.endswith(" un texte…"), cut  # not "… texte sur…"
    assert cut_subject("x" * 120).endswith("…") and len(cut_subject("x" * 120)) < 78


def test_build_takes_a_regional_locale_and_refuses_an_unknown_one(tmp_path):
    from support.cli import digest

    result = digest("build", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--out", str(tmp_path),
                    "--locale", "en_gb")
    assert result.returncode == 0, result.stderr
    assert "Sunday, 29 November 2026" in (tmp_path / "digest.html").read_text(encoding="utf-8")
    refused = digest("build", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--out", str(tmp_path),
                     "--locale", "de")
    assert refused.returncode == 2 and refused.stderr.startswith("digest: error: --locale") and "Traceback" not in refused.stderr
