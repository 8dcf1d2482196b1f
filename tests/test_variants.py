"""Each variant cut from its language's pieces is, byte for byte, the email a full render of it
gives (Jinja → MJML → premailer for that variant alone): HTML, text twin, subject and preheader,
for French, English and Arabic and several choices of rubrics, on the example day and on a
generated 500-item day whose variants each need the size budget."""
from __future__ import annotations

from dataclasses import replace

import pytest

from digest.core.config import load
from digest.core.model import Variant
from digest.pipeline.edition import prepare
from digest.pipeline.render import Renderer

from support.bigday import big_day
from support.paths import DAY, EXAMPLES, ROOT

CHOICES = [None, frozenset({"economie", "sport"}), frozenset({"politique"}), frozenset({"tech", "culture", "societe"}),
           frozenset({"politique", "economie", "international", "societe", "culture"})]


def same(a, b) -> None:
    assert (a.subject, a.preheader, a.moved_to_more, a.dropped, a.warnings, a.slot) == \
           (b.subject, b.preheader, b.moved_to_more, b.dropped, b.warnings, b.slot)
    assert a.text == b.text
    assert a.html == b.html


@pytest.fixture(scope="module")
def example():
    settings = load(EXAMPLES / "digest.toml")
    return settings, prepare(settings, DAY).edition


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    settings = big_day(load(EXAMPLES / "digest.toml"), tmp_path_factory.mktemp("big"))
    return settings, prepare(settings, DAY).edition


@pytest.mark.parametrize("locale", ["fr", "en", "ar"])
def test_every_variant_of_the_example_day_is_the_full_render_byte_for_byte(example, locale):
    settings, edition = example
    renderer = Renderer(settings)
    for rubrics in CHOICES:
        variant = Variant(locale, rubrics)
        same(renderer.render(edition, variant), Renderer(settings).render_full(edition, variant))
    assert list(renderer._pieces) == [locale] and renderer._pieces[locale] is not None  # cut, not rendered whole


@pytest.mark.parametrize("locale", ["fr", "en", "ar"])
def test_every_variant_of_a_500_item_day_is_the_full_render_byte_for_byte(big, locale):
    settings, edition = big
    renderer = Renderer(settings)
    fitted = 0
    for rubrics in CHOICES[:4]:
        variant = Variant(locale, rubrics)
        fast, full = renderer.render(edition, variant), Renderer(settings).render_full(edition, variant)
        same(fast, full)
        fitted += fast.moved_to_more > 0
    assert fitted >= 2  # the budget moved items out, and the pieces found the same cut


def test_a_regional_locale_and_a_slot_of_its_own_are_cut_the_same_way(example):
    settings, edition = example
    regional = replace(settings, newsletter=replace(settings.newsletter, locale="ar-MA"))
    renderer = Renderer(regional, slot="Ab3" * 14 + "xy")
    for variant in (Variant("ar-MA"), Variant("ar-MA", frozenset({"sport"})), Variant("en-GB", frozenset({"tech"}))):
        same(renderer.render(edition, variant), Renderer(regional, slot="Ab3" * 14 + "xy").render_full(edition, variant))


def test_the_pieces_belong_to_one_slot_and_one_edition(example, big):
    settings, edition = example
    shown = Renderer(settings).render(edition, Variant("fr"))
    sending = Renderer(settings, slot="Zz9" * 14 + "qq").render(edition, Variant("fr"))
    assert shown.html.count("__DIGEST_TOKEN__") == 2 and sending.html.count("Zz9" * 14 + "qq") == 2
    assert "__DIGEST_TOKEN__" not in sending.html
    # One renderer given another edition starts afresh: no piece of the first is reused.
    renderer = Renderer(settings)
    renderer.render(edition, Variant("fr"))
    other = replace(edition, leads=edition.leads[1:])
    same(renderer.render(other, Variant("fr", frozenset({"sport"}))),
         Renderer(settings).render_full(other, Variant("fr", frozenset({"sport"}))))


def test_a_theme_without_marks_gets_full_renders_and_the_same_email(example, tmp_path):
    settings, edition = example
    (tmp_path / "email").mkdir()
    template = (ROOT / "templates" / "email" / "digest.mjml.j2").read_text(encoding="utf-8")
    unmarked = template.replace("{% if marks %}", "{% if false %}")
    assert unmarked != template
    (tmp_path / "email" / "digest.mjml.j2").write_text(unmarked, encoding="utf-8")
    themed = replace(settings, theme=tmp_path)
    renderer = Renderer(themed)
    variant = Variant("fr", frozenset({"economie"}))
    same(renderer.render(edition, variant), Renderer(settings).render_full(edition, variant))
    assert renderer._pieces["fr"] is None


def test_a_further_variant_compiles_no_mjml_and_inlines_no_css(example, monkeypatch):
    """What makes a further variant cost a small part of a full render (the benchmark,
    tests/benchmarks/bench_variants.py, measures it: about 1/70): once a language's pieces are made,
    a variant of it is cut from them with no MJML compile and no premailer pass. Counted, not timed."""
    import digest.pipeline.render as render

    calls = {"mjml": 0, "inline": 0}
    compile_mjml, inline = render.mjml.mjml2html, render.inline_css

    def counted_compile(*args, **kwargs):
        calls["mjml"] += 1
        return compile_mjml(*args, **kwargs)

    def counted_inline(*args, **kwargs):
        calls["inline"] += 1
        return inline(*args, **kwargs)

    monkeypatch.setattr(render.mjml, "mjml2html", counted_compile)
    monkeypatch.setattr(render, "inline_css", counted_inline)
    settings, edition = example
    renderer = Renderer(settings)
    renderer.render(edition, Variant("fr"))
    assert calls["mjml"] >= 1 and calls["inline"] >= 1  # the language's pieces: one render of everything
    before = dict(calls)
    for rubrics in CHOICES[1:]:
        renderer.render(edition, Variant("fr", rubrics))
    assert calls == before
    renderer.render_full(edition, Variant("fr", CHOICES[1]))  # a whole render does both: the counters see them
    assert calls["mjml"] > before["mjml"] and calls["inline"] > before["inline"]
