"""The example edition in a real browser (headless Chromium): at 320, 375 and 600 px, in French,
Arabic and English, light and dark, as a typographer, a phone user and a screen-reader user see it."""
from __future__ import annotations

import pytest

from digest.core.config import load
from digest.core.model import Variant
from digest.pipeline.edition import prepare
from digest.pipeline.render import Renderer
from digest.web.checks import contrast, parse_color

from support.browser import new_page, show_pictures
from support.paths import DAY, EXAMPLES

# The French newsroom in French and in English (its French content marked as such), the Arabic one.
EDITIONS = {"fr": (EXAMPLES / "digest.toml", "fr"), "ar": (EXAMPLES / "ar" / "digest.toml", "ar"),
            "en": (EXAMPLES / "digest.toml", "en")}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Each edition rendered once and written where Chromium can open it."""
    folder = tmp_path_factory.mktemp("emails")
    out = {}
    for name, (config, locale) in EDITIONS.items():
        settings = load(config)
        rendered = Renderer(settings).render(prepare(settings, DAY).edition, Variant(locale))
        path = folder / f"digest-{name}.html"
        path.write_text(rendered.html, encoding="utf-8")
        out[name] = path
    return out


def opened(browser, path, width, scheme="light", height=740):
    page = new_page(browser, viewport={"width": width, "height": height}, color_scheme=scheme)
    show_pictures(page)
    page.goto(path.as_uri())
    return page


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


@pytest.mark.parametrize("width", [320, 375, 600])
@pytest.mark.parametrize("locale", ["fr", "ar", "en"])
def test_the_email_fits_the_screen_and_leads_with_its_top_story(browser, pages, shots, locale, width):
    page = opened(browser, pages[locale], width)
    try:
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


# Every character of the page's visible text with where it is drawn; a mark that French keeps with
# the word before it must never be the first thing on a line.
LINE_STARTS = """(marks) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: (node) => {
    const el = node.parentElement;
    if (!el || el.closest('[style*="display:none"]') || !node.textContent.trim()) return NodeFilter.FILTER_REJECT;
    return NodeFilter.FILTER_ACCEPT; }});
  const chars = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.textContent.length; i++) chars.push([node, i]);
  }
  const rect = ([node, i]) => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                                const rects = r.getClientRects(); return rects.length ? rects[0] : null; };
  const found = [];
  for (let k = 0; k < chars.length; k++) {
    const [node, i] = chars[k];
    if (!marks.includes(node.textContent[i])) continue;
    const here = rect(chars[k]);
    if (!here) continue;
    let j = k - 1;
    while (j >= 0 && /\\s/.test(chars[j][0].textContent[chars[j][1]])) j--;
    if (j < 0) continue;
    const before = rect(chars[j]);
    if (before && before.top + before.height / 2 < here.top) {
      found.push(node.textContent.slice(Math.max(0, i - 30), i + 10));
    }
  }
  return found;
}"""


@pytest.mark.parametrize("width", [320, 375, 600])
def test_no_line_of_the_french_email_starts_with_a_mark_that_belongs_to_the_word_before(browser, pages, width):
    page = opened(browser, pages["fr"], width)
    try:
        found = page.evaluate(LINE_STARTS, [":", ";", "!", "?", "»", "%"])
    finally:
        page.close()
    assert found == [], found[:5]


def test_mixed_arabic_and_latin_titles_keep_their_own_direction_and_language(browser, tmp_path):
    """French content in the Arabic email is marked French, reads left to right and starts on the
    left; the Arabic strings around it stay right to left."""
    settings = load(EDITIONS["fr"][0])
    rendered = Renderer(settings).render(prepare(settings, DAY).edition, Variant("ar"))
    path = tmp_path / "mixed.html"
    path.write_text(rendered.html, encoding="utf-8")
    page = opened(browser, path, 375)
    try:
        seen = page.evaluate("""() => {
          const title = document.querySelector('h2.lead-title'), brief = document.querySelector('td.brief');
          const excerpt = document.querySelector('p.lead-excerpt');
          return {
            page: getComputedStyle(document.body).direction,
            title: getComputedStyle(title).direction, titleLang: title.lang,
            kicker: getComputedStyle(document.querySelector('p.kicker')).direction,
            excerptAlign: getComputedStyle(excerpt).textAlign, excerptLang: excerpt.lang,
            briefLang: brief.lang, briefDirection: getComputedStyle(brief).direction,
            briefAlign: getComputedStyle(brief).textAlign,
          };
        }""")
    finally:
        page.close()
    assert seen == {"page": "rtl", "title": "ltr", "titleLang": "fr", "kicker": "rtl", "excerptAlign": "left",
                    "excerptLang": "fr", "briefLang": "fr", "briefDirection": "ltr", "briefAlign": "left"}


def rgb(css: str):
    numbers = [int(float(x)) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
    return parse_color("#" + "".join(f"{n:02x}" for n in numbers))


DARK = """() => {
  const behind = (el) => { let b = 'rgba(0, 0, 0, 0)';
    while (el && (b = getComputedStyle(el).backgroundColor) === 'rgba(0, 0, 0, 0)') { el = el.parentElement; }
    return b; };
  const pick = (sel) => { const el = document.querySelector(sel); return el && [getComputedStyle(el).color, behind(el)]; };
  const button = document.querySelector('.button a');
  const plate = document.querySelector('.logo table');
  const logo = document.querySelector('.logo img');
  return { lead: pick('h2.lead-title a'), brief: pick('td.brief a'), plain: pick('td.brief:not(:has(a))'),
           date: pick('p.masthead-date'), contents: pick('p.contents'),
           titles: [...document.querySelectorAll('h2.rubric-title')].map(h => [h.className, getComputedStyle(h).color, behind(h)]),
           kicker: pick('p.kicker'), separator: getComputedStyle(document.querySelector('table.briefs td')).borderTopColor,
           card: behind(document.querySelector('table.briefs')),
           button: [getComputedStyle(button).backgroundColor, getComputedStyle(button).color, behind(button.closest('.button'))],
           plate: plate && [getComputedStyle(plate).backgroundColor, plate.getBoundingClientRect().width],
           logoWidth: logo && logo.getBoundingClientRect().width };
}"""


@pytest.mark.parametrize("locale", ["fr", "ar", "en"])
def test_dark_mode_keeps_text_readable_each_rubric_its_colour_and_the_button_a_button(browser, pages, shots, locale):
    page = opened(browser, pages[locale], 375, "dark")
    try:
        seen = page.evaluate(DARK)
        page.screenshot(path=str(shots / f"email-{locale}-375-dark.png"), full_page=True)
    finally:
        page.close()
    newsroom = locale != "ar"  # the French newsroom has linked briefs and a logo; the Arabic one neither
    for name in ("lead", "brief", "plain", "date", "contents", "kicker"):
        if seen[name] is None and name == "brief" and not newsroom:
            continue
        fg, bg = (rgb(c) for c in seen[name])
        assert sum(bg) < 1.0, f"{name}: the background stayed light in dark mode"
        assert contrast(fg, bg) >= 4.5, f"{name}: {seen[name]}"
    # Each rubric's title keeps a hue of its own (a lighter tint, not the common white) and reads.
    colours = {color for _, color, _ in seen["titles"][:-1]}  # the last is "more on the web"
    assert len(colours) >= 5 and "rgb(241, 243, 246)" not in colours, seen["titles"]
    for _, color, behind in seen["titles"]:
        assert contrast(rgb(color), rgb(behind)) >= 4.5, (color, behind)
    assert rgb(seen["kicker"][0]) != rgb("rgb(241, 243, 246)")
    # Separators are dark lines, linked briefs are links (not the plain text's colour).
    assert contrast(rgb(seen["separator"]), rgb(seen["card"])) < 2.0
    assert not newsroom or seen["brief"][0] != seen["plain"][0]
    # The button stands out from its card (3:1 and more) and its label from the button.
    background, label, card = (rgb(c) for c in seen["button"])
    assert contrast(background, card) >= 3.0 and contrast(label, background) >= 4.5, seen["button"]
    # The logo's white plate is the logo's width (and its padding), not the column's.
    if not newsroom:
        return
    plate_colour, plate_width = seen["plate"]
    assert plate_colour == "rgb(255, 255, 255)" and plate_width <= seen["logoWidth"] + 16, seen


def test_touch_targets_are_44_px_and_linked_briefs_look_like_links(browser, pages, shots):
    page = opened(browser, pages["fr"], 375, height=812)
    try:
        seen = page.evaluate("""() => ({
          button: document.querySelector('.button a').getBoundingClientRect().height,
          footer: [...document.querySelectorAll('p.footer-links a')].map(a => [a.textContent, a.getBoundingClientRect().height]),
          linked: (() => { const s = getComputedStyle(document.querySelector('td.brief a')); return [s.color, s.textDecorationLine]; })(),
          plain: (() => { const s = getComputedStyle([...document.querySelectorAll('td.brief')].find(td => !td.querySelector('a')));
                          return [s.color, s.textDecorationLine]; })(),
          contents: document.querySelector('p.contents').textContent,
        })""")
        page.screenshot(path=str(shots / "email-fr-375-first-screen.png"))
    finally:
        page.close()
    assert seen["button"] >= 44
    assert len(seen["footer"]) == 3 and all(height >= 44 for _, height in seen["footer"]), seen["footer"]
    assert seen["linked"][1] == "underline" and seen["plain"][1] == "none" and seen["linked"][0] != seen["plain"][0]
    assert seen["contents"].startswith("Dans cette édition\u00a0: Politique · Économie")
