"""The example edition in a real browser (headless Chromium), at 375 px and 600 px, in French and Arabic."""
from __future__ import annotations

import pytest

from digest.core.config import load
from digest.core.model import Variant
from digest.pipeline.edition import prepare
from digest.pipeline.render import Renderer

from support.browser import new_page
from support.paths import DAY, EXAMPLES

EDITIONS = {"fr": EXAMPLES / "digest.toml", "ar": EXAMPLES / "ar" / "digest.toml"}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Each edition rendered once and written where Chromium can open it."""
    folder = tmp_path_factory.mktemp("emails")
    out = {}
    for locale, config in EDITIONS.items():
        settings = load(config)
        rendered = Renderer(settings).render(prepare(settings, DAY).edition, Variant(locale))
        path = folder / f"digest-{locale}.html"
        path.write_text(rendered.html, encoding="utf-8")
        out[locale] = path
    return out


MEASURE = """() => {
  const width = window.innerWidth;
  const visible = [...document.body.querySelectorAll('*')].filter(el => {
    const style = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && rect.width > 0 && rect.height > 0
      && !el.closest('[style*="display:none"]') && !el.closest('[style*="max-height:0px"]');
  });
  const wide = visible.filter(el => {
    const rect = el.getBoundingClientRect();
    return rect.right > width + 0.5 || rect.left < -0.5;
  }).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().left) + '..'
                + Math.round(el.getBoundingClientRect().right));
  const lead = document.querySelector('h2.lead-title');
  const leadRect = lead.getBoundingClientRect();
  const h1 = document.querySelector('h1').getBoundingClientRect();
  return {
    scrollWidth: document.documentElement.scrollWidth, width, height: window.innerHeight, wide,
    leadTop: leadRect.top, leadBottom: leadRect.bottom, leadText: lead.textContent.trim(),
    leadDirection: getComputedStyle(lead).direction, htmlDir: document.documentElement.dir,
    bodyDirection: getComputedStyle(document.body).direction,
    h1Left: h1.left, h1Right: h1.right,
    h1Align: getComputedStyle(document.querySelector('h1')).textAlign,
  };
}"""


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_the_email_fits_the_screen_and_leads_with_its_top_story(browser, pages, shots, locale, width):
    page = new_page(browser, viewport={"width": width, "height": 740})
    try:
        page.goto(pages[locale].as_uri())
        m = page.evaluate(MEASURE)
        page.screenshot(path=str(shots / f"email-{locale}-{width}.png"), full_page=True)
    finally:
        page.close()
    assert m["scrollWidth"] <= width, f"horizontal scrolling: {m['scrollWidth']} px wide in a {width} px screen"
    assert m["wide"] == [], m["wide"][:5]
    assert 0 <= m["leadTop"] < m["height"], "the lead story's title is not in the first screen"
    assert m["leadText"]
    if locale == "ar":
        assert m["htmlDir"] == "rtl" and m["bodyDirection"] == "rtl" and m["leadDirection"] == "rtl"
        assert m["h1Align"] in ("right", "start") and m["h1Right"] > width - 80  # the masthead starts at the right
    else:
        assert m["htmlDir"] == "ltr" and m["leadDirection"] == "ltr" and m["h1Left"] < 80


def test_mixed_arabic_and_latin_titles_keep_their_own_direction(browser, tmp_path):
    """A French title inside the Arabic email reads left to right (dir="auto"), and an Arabic one right to left."""
    settings = load(EDITIONS["fr"])
    rendered = Renderer(settings).render(prepare(settings, DAY).edition, Variant("ar"))
    path = tmp_path / "mixed.html"
    path.write_text(rendered.html, encoding="utf-8")
    page = new_page(browser, viewport={"width": 375, "height": 740})
    try:
        page.goto(path.as_uri())
        directions = page.evaluate("""() => ({
          page: getComputedStyle(document.body).direction,
          title: getComputedStyle(document.querySelector('h2.lead-title')).direction,
          kicker: getComputedStyle(document.querySelector('p.kicker')).direction,
        })""")
    finally:
        page.close()
    assert directions == {"page": "rtl", "title": "ltr", "kicker": "rtl"}


def test_dark_mode_keeps_text_readable_and_the_logo_on_its_plate(browser, pages, shots):
    from digest.web.checks import contrast, parse_color

    page = new_page(browser, viewport={"width": 375, "height": 740}, color_scheme="dark")
    try:
        page.goto(pages["fr"].as_uri())
        colours = page.evaluate("""() => {
          const pick = (sel) => { const el = document.querySelector(sel); const s = getComputedStyle(el);
            let bg = el, b = 'rgba(0, 0, 0, 0)';
            while (bg && (b = getComputedStyle(bg).backgroundColor) === 'rgba(0, 0, 0, 0)') { bg = bg.parentElement; }
            return [s.color, b]; };
          return { lead: pick('h2.lead-title a'), brief: pick('td.brief a'), date: pick('p.masthead-date'),
                   logo: getComputedStyle(document.querySelector('.logo-plate')).backgroundColor };
        }""")
        page.screenshot(path=str(shots / "email-fr-375-dark.png"), full_page=True)
    finally:
        page.close()

    def rgb(css: str):
        numbers = [int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        return parse_color("#" + "".join(f"{n:02x}" for n in numbers))

    for name in ("lead", "brief", "date"):
        fg, bg = (rgb(c) for c in colours[name])
        assert sum(bg) < 1.0, f"{name}: the background stayed light in dark mode"
        assert contrast(fg, bg) >= 4.5, f"{name}: {colours[name]}"
    assert colours["logo"] == "rgb(255, 255, 255)"
