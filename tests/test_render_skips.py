"""One bad character never stops an edition: the renderer's line of defence.

An item the renderer cannot render (made by hand here, past the sources that would have cleaned it)
is found, left out and named; `digest build` and `digest send` print it and exit 1 while the edition
goes out with the others. Only an edition that cannot render with no items at all blames the theme.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from digest.core.errors import ThemeError
from digest.core.model import Image
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer

from support.items import item
from support.mail import message_parts, parse
from support.newsroom import Newsroom
from support.paths import DAY, ROOT, TZ_NAME


@pytest.mark.parametrize("bad", ["\x01", "\ud800", "\ufffe", "\x1b[31m"])
def test_an_item_that_cannot_be_rendered_is_left_out_and_named(example_settings, bad):
    good = [item(f"Brève correcte numéro {n}", hour=8 + n, url=f"https://news.example.ma/{n}") for n in range(6)]
    broken = item(f"Une brève{bad} cassée", hour=9, minute=30, source="Fil\x1b[2J info",
                  url="https://news.example.ma/cassee")
    lead = item("Article à la une", kind="article", featured=True, url="https://news.example.ma/une",
                image=Image("https://news.example.ma/une.jpg", f"Photo{bad}"))
    edition = rank([*good, broken, lead], example_settings, DAY, TZ_NAME)
    rendered = Renderer(example_settings).render(edition)
    described = repr(bad)[1:-1]
    assert set(rendered.skipped) == {
        f'item "Une brève{described} cassée" from source "Fil\\x1b[2J info"',
        'item "Article à la une" from source "test"',  # its image's alt text was the bad part
    }
    for n in range(6):
        assert f"Brève correcte numéro {n}" in rendered.html and f"Brève correcte numéro {n}" in rendered.text
    assert "cassée" not in rendered.html + rendered.text and "Article à la une" not in rendered.html + rendered.subject


def test_only_an_edition_that_cannot_render_without_items_blames_the_theme(example_settings, tmp_path):
    (tmp_path / "email").mkdir()
    mjml = (ROOT / "templates" / "email" / "digest.mjml.j2").read_text(encoding="utf-8")
    (tmp_path / "email" / "digest.mjml.j2").write_text(mjml.replace("<mj-body", "<mj-body <", 1), encoding="utf-8")
    edition = rank([item("Une brève", url="https://news.example.ma/a")], example_settings, DAY, TZ_NAME)
    with pytest.raises(ThemeError, match="check the theme's tags"):
        Renderer(replace(example_settings, theme=tmp_path)).render(edition)


def _breaking_theme(folder: Path) -> Path:
    """A theme whose brief macro writes MJML that does not parse for one title: the item, not the
    theme, is what cannot be rendered."""
    (folder / "email").mkdir(parents=True)
    macros = (ROOT / "templates" / "email" / "macros.mjml.j2").read_text(encoding="utf-8")
    opening = '<td class="brief{{ align(item) }}"{{ lang(item) }}>'
    macros = macros.replace(opening, opening + '{% if "CASSE" in item.title %}<{% endif %}', 1)
    assert "CASSE" in macros
    (folder / "email" / "macros.mjml.j2").write_text(macros, encoding="utf-8")
    return folder


def test_build_and_send_leave_out_an_item_that_cannot_be_rendered_and_exit_1(tmp_path):
    room = Newsroom(tmp_path / "room", subscribers=4)
    room.with_theme(_breaking_theme(tmp_path / "theme"))
    page = tmp_path / "page.txt"
    page.write_text("- 10:00 Une brève CASSE par le thème\n- 11:00 Une autre brève du jour\n", encoding="utf-8")

    built = room.cli("build", "--out", str(tmp_path / "edition"), "--source", str(page))
    assert built.returncode == 1, built.stderr
    assert (f'digest: error: item "Une brève CASSE par le thème" from source "{page}" could not be rendered, '
            "left out") in built.stderr.splitlines()
    html = (tmp_path / "edition" / "digest.html").read_text(encoding="utf-8")
    assert "Une autre brève du jour" in html and "CASSE" not in html

    sent = room.cli("send", "--source", str(page))
    assert sent.returncode == 1, sent.stderr
    lines = [line for line in sent.stderr.splitlines() if "could not be rendered" in line]
    assert lines == [f'digest: error: item "Une brève CASSE par le thème" from source "{page}" could not be rendered, left out']
    messages = [p.read_bytes() for p in sorted((tmp_path / "room" / "outbox").rglob("*.eml"))]
    assert len(messages) == 4  # the edition went out, to everyone
    for data in messages:
        plain, rich = message_parts(data)
        assert "CASSE" not in plain + rich
    everyone = next(m for m in messages if parse(m)["To"].addresses[0].addr_spec == room.emails[0])
    assert "Une autre brève du jour" in message_parts(everyone)[1]


def test_a_theme_broken_everywhere_is_still_a_configuration_error(tmp_path):
    room = Newsroom(tmp_path / "room", subscribers=1)
    theme = tmp_path / "theme" / "email"
    theme.mkdir(parents=True)
    mjml = (ROOT / "templates" / "email" / "digest.mjml.j2").read_text(encoding="utf-8")
    (theme / "digest.mjml.j2").write_text(mjml.replace("<mj-body", "<mj-body <", 1), encoding="utf-8")
    room.with_theme(tmp_path / "theme")
    page = tmp_path / "page.txt"
    page.write_text("- 10:00 Une brève du jour\n", encoding="utf-8")
    built = room.cli("build", "--out", str(tmp_path / "edition"), "--source", str(page))
    assert built.returncode == 2
    assert "does not give valid MJML" in built.stderr and "check the theme's tags" in built.stderr
    assert "could not be rendered" not in built.stderr
