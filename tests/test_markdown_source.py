"""Editor features: Markdown with front matter, read into one article each; broken front matter named."""
from __future__ import annotations

import re

import pytest

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.core.model import Image
from digest.pipeline.gather import gather
from digest.pipeline.sources import Context, guess_kind, markdown

from support.paths import DAY, EXAMPLES, TZ

FEATURES = EXAMPLES / "features"
DESSALEMENT = FEATURES / "2026-11-29-dessalement.md"
FESTIVAL = FEATURES / "2026-11-29-festival-marrakech.md"
MARKUP = re.compile(r"\*\*|(?<!\w)\*\w|\w\*(?!\w)|\]\(|^#|\[le ", re.M)


def read(data: bytes, name: str = "feature.md", rubric: str | None = None, featured: bool | None = None):
    warnings: list[str] = []
    items = markdown.read(data, Context(SourceSpec(name, name, rubric=rubric, featured=featured), DAY, TZ, warnings.append))
    return items, warnings


def body_paragraphs_of(path) -> list[str]:
    """The Markdown body's paragraphs as the file has them (blank-line separated)."""
    text = path.read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]
    return [p.strip() for p in body.split("\n\n") if p.strip()]


def test_dessalement_front_matter():
    [item], warnings = read(DESSALEMENT.read_bytes(), "dessalement")
    assert item.kind == "article"
    assert item.title == "Dessalement : à Casablanca, l’usine qui veut sécuriser l’eau de 7,5 millions d’habitants"
    assert item.published.isoformat() == "2026-11-29T09:15:00+01:00"
    assert item.category == "Économie"
    assert item.url is None
    assert item.image == Image(
        url="https://lequotidien.example.ma/img/2026/11/station-dessalement-casablanca-chantier.jpg",
        alt="Vue aérienne du chantier de la station de dessalement, au bord de l’océan Atlantique, au sud de Casablanca",
        width=1200, height=675,  # image_width and image_height in the front matter
    )
    assert item.featured is True
    assert item.author == "Salma Bennani"
    assert item.summary.startswith("Reportage sur le chantier de la station de dessalement")
    assert item.source == "dessalement"
    assert warnings == []


def test_festival_front_matter():
    [item], _ = read(FESTIVAL.read_bytes(), "festival")
    assert item.title == "Festival international du film de Marrakech : une édition tournée vers la jeune création africaine"
    assert item.published.isoformat() == "2026-11-29T16:40:00+01:00"
    assert item.category == "Culture"
    assert item.url == "https://lequotidien.example.ma/culture/festival-marrakech-2026.html"
    assert item.image == Image(
        url="https://lequotidien.example.ma/img/2026/11/festival-marrakech-palais-des-congres.jpg",
        alt="Le tapis rouge devant le Palais des congrès de Marrakech, à la tombée de la nuit",
    )
    assert item.featured is False
    assert item.author == "Youssef El Amrani"


@pytest.mark.parametrize("path, count", [(DESSALEMENT, 7), (FESTIVAL, 5)])
def test_body_paragraphs_are_the_markdown_paragraphs_as_text(path, count):
    [item], _ = read(path.read_bytes(), path.name)
    assert len(item.body) == count == len(body_paragraphs_of(path))
    for paragraph in item.body:
        assert "**" not in paragraph
        assert not MARKUP.search(paragraph), paragraph
        assert "\n" not in paragraph and "<" not in paragraph


def test_bold_italic_and_link_become_plain_text():
    [item], _ = read(DESSALEMENT.read_bytes())
    assert "À pleine capacité, l’usine produira 300 millions de mètres cubes par an, de quoi" in item.body[1]
    assert "« On nous dit que, d’ici deux ans, on n’aura plus" in item.body[5]
    assert item.body[3].endswith("Le détail du programme national est consultable sur le site de l’ONEE.")
    assert item.body[0].startswith("Au sud de Casablanca, face à l’Atlantique")
    assert item.body[-1].endswith("la sécurité hydrique du Royaume.")


def test_festival_first_and_last_paragraphs_exact():
    [item], _ = read(FESTIVAL.read_bytes())
    expected = body_paragraphs_of(FESTIVAL)
    assert item.body[0] == expected[0]
    assert item.body[-1] == expected[-1]
    assert item.body[1].startswith("Cette année, quatorze longs métrages sont en lice")


def test_source_rubric_and_featured_override_the_front_matter():
    [item], _ = read(FESTIVAL.read_bytes(), rubric="culture", featured=True)
    assert item.category == "culture"
    assert item.featured is True


def test_features_are_guessed_as_markdown():
    for path in (DESSALEMENT, FESTIVAL):
        assert guess_kind(str(path), path.read_bytes()) == "markdown"


def test_features_through_gather_without_a_kind():
    specs = [SourceSpec("d", str(DESSALEMENT)), SourceSpec("f", str(FESTIVAL))]
    result = gather(specs, DAY, TZ)
    assert result.errors == ()
    assert [i.source for i in result.items] == ["d", "f"]
    assert [i.kind for i in result.items] == ["article", "article"]


def test_published_without_offset_is_the_newsrooms_local_time():
    [item], _ = read(b"---\ntitle: Sans fuseau\npublished: 2026-11-29T09:15:00\n---\nTexte.\n")
    assert item.published.isoformat() == "2026-11-29T09:15:00+01:00"


def test_published_in_utc_is_converted_to_local_time():
    [item], _ = read(b"---\ntitle: En UTC\npublished: 2026-11-29T23:30:00Z\n---\nTexte.\n")
    assert item.published.isoformat() == "2026-11-30T00:30:00+01:00"


def test_title_is_one_line():
    [item], _ = read(b'---\ntitle: "Ligne un\\r\\nBcc: x@example.com"\npublished: 2026-11-29T09:15:00+01:00\n---\nTexte.\n')
    assert "\r" not in item.title and "\n" not in item.title
    assert item.title == "Ligne un Bcc: x@example.com"


def test_hostile_html_in_markdown_body_is_removed():
    data = (
        b"---\ntitle: Hostile\npublished: 2026-11-29T09:15:00+01:00\n---\n"
        b"Un paragraphe.<script>alert(1)</script>\n\n"
        b'<iframe src="https://evil.example/"></iframe>\n\n'
        b'[clic](javascript:alert(2)) et <img src="x" onerror="alert(3)">\n\n'
        b'<form action="https://evil.example/"><input name="p"></form>\n'
    )
    [item], _ = read(data)
    for text in (item.title, item.summary, *item.body):
        for marker in ("<script", "javascript:", "onerror", "onclick", "<iframe", "<form", "data:", "alert("):
            assert marker not in text.lower(), (marker, text)
    assert item.body[0] == "Un paragraphe."


# --- broken front matter ----------------------------------------------------------------------------------

BROKEN = {
    "invalid-yaml": b"---\ntitle: [pas ferme\npublished: 2026-11-29T09:15:00+01:00\n---\nTexte.\n",
    "yaml-mapping": b"---\ntitle: a: b: c\npublished: 2026-11-29T09:15:00+01:00\n---\nTexte.\n",
    "missing-title": b"---\npublished: 2026-11-29T09:15:00+01:00\nrubric: Culture\n---\nTexte.\n",
    "blank-title": b'---\ntitle: "   "\npublished: 2026-11-29T09:15:00+01:00\n---\nTexte.\n',
    "missing-published": b"---\ntitle: Un titre\n---\nTexte.\n",
    "bad-published": b"---\ntitle: Un titre\npublished: demain matin\n---\nTexte.\n",
    "http-url": b"---\ntitle: Un titre\npublished: 2026-11-29T09:15:00+01:00\nurl: http://lequotidien.example.ma/x.html\n---\nTexte.\n",
    "javascript-url": b"---\ntitle: Un titre\npublished: 2026-11-29T09:15:00+01:00\nurl: javascript:alert(1)\n---\nTexte.\n",
    "http-image": b"---\ntitle: Un titre\npublished: 2026-11-29T09:15:00+01:00\nimage: http://x.example/a.jpg\n---\nTexte.\n",
    "no-front-matter": b"Juste du texte sans en-tete.\n",
    "latin1": "---\ntitle: Société\npublished: 2026-11-29T09:15:00+01:00\n---\nTexte.\n".encode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_front_matter_is_a_source_error_naming_the_source(case):
    name = f"features/{case}.md"
    with pytest.raises(SourceError) as info:
        read(BROKEN[case], name)
    error = info.value
    assert error.source == name
    text = str(error)
    assert name in text
    assert "\n" not in text


def test_missing_title_error_says_title():
    with pytest.raises(SourceError) as info:
        read(BROKEN["missing-title"], "t.md")
    assert "title" in str(info.value)


def test_missing_published_error_says_published():
    with pytest.raises(SourceError) as info:
        read(BROKEN["missing-published"], "p.md")
    assert "published" in str(info.value)


def test_http_url_error_says_https():
    with pytest.raises(SourceError) as info:
        read(BROKEN["http-url"], "u.md")
    assert "https://" in str(info.value) and "url" in str(info.value)


def test_invalid_yaml_error_says_yaml():
    with pytest.raises(SourceError) as info:
        read(BROKEN["invalid-yaml"], "y.md")
    assert "YAML" in str(info.value)


def test_broken_feature_in_gather_leaves_the_other_feature(tmp_path):
    broken = tmp_path / "broken.md"
    broken.write_bytes(BROKEN["missing-title"])
    result = gather([SourceSpec("cassé", str(broken)), SourceSpec("festival", str(FESTIVAL))], DAY, TZ)
    assert [e.source for e in result.errors] == ["cassé"]
    assert [i.source for i in result.items] == ["festival"]
