"""Page dumps read exactly: the real seed, the fixture dumps, and small dumps written by each test."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.pipeline.gather import gather, in_day
from digest.pipeline.sources import Context, pagedump

from support.cli import digest
from support.paths import DAY, FIXTURES, SEED, TZ, TZ_NAME

PAGEDUMPS = FIXTURES / "pagedumps"
FURNITURE = ("Sous-Rubrique", "Suivez-nous sur Facebook")
ARTICLE_TITLE = "Bourita et Blinken renforcent les liens Maroco-Américains à Washington"


def read(data: bytes, name: str = "dump.txt", day: date = DAY, rubric: str | None = None):
    warnings: list[str] = []
    items = pagedump.read(data, Context(SourceSpec(name, name, rubric=rubric), day, TZ, warnings.append))
    return items, warnings


def seed_expectations() -> tuple[list[tuple[str, str]], str, list[str]]:
    """(time, title) of each brief, the article's title and its paragraphs, parsed from the seed by hand."""
    lines = SEED.read_text(encoding="utf-8").split("\n")
    briefs = [(line[2:7], line[7:]) for line in lines if re.match(r"^- \d\d:\d\d", line)]
    start = lines.index("Suivez-nous sur Facebook") + 1
    return briefs, lines[start], [line for line in lines[start + 1:] if line.strip()]



# --- the seed, through the reader -------------------------------------------------------------------


def test_seed_hand_parsing_finds_nine_briefs_and_six_paragraphs():
    briefs, title, paras = seed_expectations()
    assert len(briefs) == 9
    assert title == ARTICLE_TITLE
    assert len(paras) == 6


def test_seed_gives_exactly_nine_briefs_and_one_article():
    items, _ = read(SEED.read_bytes(), "seed")
    assert [i.kind for i in items].count("brief") == 9
    assert [i.kind for i in items].count("article") == 1
    assert len(items) == 10


def test_seed_brief_titles_are_the_file_titles_character_for_character():
    items, _ = read(SEED.read_bytes(), "seed")
    expected = [title for _, title in seed_expectations()[0]]
    assert [i.title for i in items if i.kind == "brief"] == expected
    assert items[0].title == "Immo Expo By Avito 2025 : Le salon qui réinvente le marché immobilier marocain"
    briefs = [i for i in items if i.kind == "brief"]
    assert briefs[-1].title == "Sanctions US : l’ONU défend Francesca Albanese"


def test_seed_brief_times_run_from_2055_down_to_1733_at_plus_one():
    items, _ = read(SEED.read_bytes(), "seed")
    briefs = [i for i in items if i.kind == "brief"]
    expected = [f"2026-11-29T{hhmm}:00+01:00" for hhmm, _ in seed_expectations()[0]]
    assert [b.published.isoformat() for b in briefs] == expected
    assert expected[0] == "2026-11-29T20:55:00+01:00"
    assert expected[-1] == "2026-11-29T17:33:00+01:00"
    assert all(b.timed for b in briefs)
    assert all(b.url is None and b.body == () for b in briefs)


def test_seed_article_is_bourita_blinken_with_the_six_paragraphs_exactly():
    items, _ = read(SEED.read_bytes(), "seed")
    [article] = [i for i in items if i.kind == "article"]
    _, title, paras = seed_expectations()
    assert article.title == ARTICLE_TITLE == title
    assert article.body == tuple(paras)
    assert len(article.body) == 6
    assert article.body[0].startswith("Le ministre des Affaires étrangères")
    assert article.url is None
    assert article.featured is True
    assert article.timed is False
    assert article.published.astimezone(TZ).date() == DAY


def test_seed_page_furniture_never_reaches_an_item():
    items, warnings = read(SEED.read_bytes(), "seed")
    for item in items:
        for text in (item.title, item.summary, *item.body):
            for furniture in FURNITURE:
                assert furniture not in text, (furniture, text)
    assert warnings == []


def test_seed_via_cli_json(tmp_path):
    result = digest(
        "gather", "--source", str(SEED), "--date", "2026-11-29", "--timezone", TZ_NAME, "--format", "json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["date"] == "2026-11-29"
    assert payload["timezone"] == TZ_NAME
    assert payload["errors"] == []
    items = payload["items"]
    briefs_expected, title, paras = seed_expectations()
    briefs = [i for i in items if i["kind"] == "brief"]
    articles = [i for i in items if i["kind"] == "article"]
    assert len(items) == 10 and len(briefs) == 9 and len(articles) == 1
    assert sorted((b["title"], b["published"]) for b in briefs) == sorted(
        (t, f"2026-11-29T{hhmm}:00+01:00") for hhmm, t in briefs_expected
    )
    assert articles[0]["title"] == title
    assert articles[0]["body"] == paras
    assert all(i["url"] is None for i in items)
    assert all("body" not in b for b in briefs)
    assert all(i["source"] == str(SEED) for i in items)
    for item in items:
        for text in (item["title"], item.get("summary", ""), *item.get("body", [])):
            assert "Sous-Rubrique" not in text and "Suivez-nous sur Facebook" not in text


# --- the fixture dumps --------------------------------------------------------------------------------


def test_other_day_briefs_without_dash_are_read_and_dated_by_the_reader():
    other = date(2026, 11, 28)
    items, _ = read((PAGEDUMPS / "other-day.txt").read_bytes(), "other-day", day=other)
    briefs = [i for i in items if i.kind == "brief"]
    assert [b.title for b in briefs] == [
        "Mondial des clubs : le Wydad connaît ses adversaires de groupe",
        "Tiznit : les coopératives d’argan lancent un label commun",
        "Bourse de Casablanca : le MASI termine la séance en léger repli",
        "Fès : la restauration de la mosquée Al Quaraouiyine entre dans sa dernière phase",
        "Marrakech : un nouveau plan de mobilité urbaine présenté au conseil communal",
        "Météo : temps froid et gelées attendus sur les reliefs de l’Atlas",
    ]
    assert [b.published.strftime("%Y-%m-%d %H:%M %z") for b in briefs] == [
        f"2026-11-28 {t} +0100" for t in ("23:10", "21:45", "19:20", "16:05", "11:30", "07:05")
    ]
    [article] = [i for i in items if i.kind == "article"]
    assert article.title == "Agadir : ouverture du Salon Halieutis consacré à la pêche durable"
    lines = (PAGEDUMPS / "other-day.txt").read_text(encoding="utf-8").split("\n")
    assert article.body == tuple(lines[-4:])
    assert len(items) == 7
    assert [i for i in items if in_day(i, DAY, TZ)] == []


def test_other_day_furniture_is_left_out():
    items, _ = read((PAGEDUMPS / "other-day.txt").read_bytes(), "other-day")
    texts = [t for i in items for t in (i.title, *i.body)]
    for furniture in ("Sous-Rubrique", "Suivez-nous sur Facebook", "Partager"):
        assert furniture not in texts


def test_arabic_dump_keeps_rtl_titles_exactly():
    data = (PAGEDUMPS / "arabic.txt").read_bytes()
    lines = data.decode("utf-8").split("\n")
    items, _ = read(data, "arabic")
    briefs = [i for i in items if i.kind == "brief"]
    assert [b.title for b in briefs] == [line[7:] for line in lines if line.startswith("- ")]
    assert briefs[0].title == "بورصة الدار البيضاء تنهي تداولاتها على وقع الارتفاع"
    assert [b.published.strftime("%H:%M") for b in briefs] == ["21:40", "20:15", "18:50", "16:30", "09:05"]
    assert all(b.published.date() == DAY for b in briefs)
    [article] = [i for i in items if i.kind == "article"]
    assert article.title == "بوريطة يستقبل نظيره الموريتاني بالرباط"
    assert article.body == tuple(line for line in lines[-4:] if line)
    assert len(article.body) == 3
    assert all("تابعونا" not in t for i in items for t in (i.title, *i.body))
    assert all(not any(c in t for c in "\u200e\u200f\u202a\u202b\u202c\u2066\u2067\u2069") for i in items for t in (i.title, *i.body))


def test_arabic_indic_digits_in_brief_times_are_read():
    items, _ = read("- ٢١:٤٠بورصة الدار البيضاء\n".encode(), "arabic-digits")
    [brief] = items
    assert brief.title == "بورصة الدار البيضاء"
    assert brief.published.isoformat() == "2026-11-29T21:40:00+01:00"


def test_two_articles_briefs_after_midnight_jump_belong_to_the_previous_day():
    items, _ = read((PAGEDUMPS / "two-articles.txt").read_bytes(), "two", day=DAY)
    briefs = [i for i in items if i.kind == "brief"]
    assert [(b.title.split(" :")[0], b.published.isoformat()) for b in briefs] == [
        ("Botola Pro", "2026-11-29T00:20:00+01:00"),
        ("Safi", "2026-11-28T23:50:00+01:00"),
        ("Kénitra", "2026-11-28T22:15:00+01:00"),
        ("Tétouan", "2026-11-28T20:40:00+01:00"),
    ]


def test_two_articles_dated_next_day_keeps_three_briefs_in_the_edition_day():
    items, _ = read((PAGEDUMPS / "two-articles.txt").read_bytes(), "two", day=DAY + timedelta(days=1))
    briefs = [i for i in items if i.kind == "brief"]
    assert [b.published.date() for b in briefs] == [date(2026, 11, 30), DAY, DAY, DAY]
    assert sum(in_day(b, DAY, TZ) for b in briefs) == 3


def test_two_articles_both_articles_with_their_paragraphs_and_no_furniture():
    data = (PAGEDUMPS / "two-articles.txt").read_bytes()
    items, _ = read(data, "two")
    articles = [i for i in items if i.kind == "article"]
    assert [a.title for a in articles] == [
        "Rabat : le Parlement adopte en deuxième lecture le projet de loi de finances",
        "Casablanca : le tramway prolonge ses horaires pendant les fêtes de fin d’année",
    ]
    assert [len(a.body) for a in articles] == [3, 2]
    assert articles[0].body[0].startswith("La Chambre des représentants a adopté")
    assert articles[1].body[-1].startswith("Des rames supplémentaires")
    assert all(a.published.date() == DAY and a.timed is False for a in articles)
    texts = [t for i in items for t in (i.title, *i.body)]
    for furniture in ("Lire aussi", "Partager", "Sous-Rubrique", "Suivez-nous sur Facebook"):
        assert furniture not in texts


def test_gather_for_the_edition_day_drops_the_previous_days_briefs():
    spec = SourceSpec("two", str(PAGEDUMPS / "two-articles.txt"))
    result = gather([spec], DAY, TZ)
    assert result.errors == ()
    assert sorted(i.title.split(" :")[0] for i in result.items) == ["Botola Pro", "Casablanca", "Rabat"]
    assert result.out_of_day == 3


# --- small dumps written by the tests -------------------------------------------------------------------


def test_crlf_line_endings_read_like_lf():
    data = SEED.read_bytes()
    crlf, _ = read(data.replace(b"\n", b"\r\n"), "crlf")
    lf, _ = read(data, "crlf")
    assert crlf == lf
    assert all("\r" not in t for i in crlf for t in (i.title, *i.body))


def test_utf8_bom_is_dropped():
    items, _ = read(b"\xef\xbb\xbf- 20:55Immo Expo By Avito 2025\n- 20:35Lavrov et Rubio\n", "bom")
    assert [i.title for i in items] == ["Immo Expo By Avito 2025", "Lavrov et Rubio"]
    assert items[0].published.isoformat() == "2026-11-29T20:55:00+01:00"


def test_bom_file_on_disk_through_gather(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.read_bytes())
    result = gather([SourceSpec("bom", str(path))], DAY, TZ)
    assert result.errors == ()
    assert len(result.items) == 10
    assert any(i.title == "Immo Expo By Avito 2025 : Le salon qui réinvente le marché immobilier marocain" for i in result.items)


@pytest.mark.parametrize(
    "line",
    ["20h55 Le titre du jour", "20:55 - Le titre du jour", "• 20:55 Le titre du jour", "20H55 Le titre du jour",
     "- 20:55Le titre du jour", "20.55 Le titre du jour", "– 20:55 | Le titre du jour"],
)
def test_brief_time_forms(line):
    items, _ = read((line + "\n").encode("utf-8"), "forms")
    [brief] = items
    assert brief.kind == "brief"
    assert brief.title == "Le titre du jour"
    assert brief.published.isoformat() == "2026-11-29T20:55:00+01:00"


def test_mixed_brief_forms_in_one_dump_keep_order_and_times():
    data = "20h55 Premier titre\n20:40 - Deuxième titre\n• 20:30 Troisième titre\n".encode()
    items, _ = read(data, "mixed")
    assert [(i.title, i.published.strftime("%H:%M")) for i in items] == [
        ("Premier titre", "20:55"), ("Deuxième titre", "20:40"), ("Troisième titre", "20:30")
    ]


def test_latin1_dump_is_a_source_error_naming_the_source():
    data = "- 20:55Le salon qui réinvente le marché\n".encode("latin-1")
    with pytest.raises(SourceError) as info:
        read(data, "latin1.txt")
    assert info.value.source == "latin1.txt"
    text = str(info.value)
    assert "latin1.txt" in text and "not UTF-8" in text
    assert "\n" not in text


def test_latin1_dump_via_cli_exits_1_with_a_one_line_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("- 20:55Le salon qui réinvente le marché\n".encode("latin-1"))
    result = digest(
        "gather", "--source", str(path), "--source", str(SEED), "--date", "2026-11-29", "--timezone", TZ_NAME,
        "--format", "json", cwd=tmp_path,
    )
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert [e["source"] for e in payload["errors"]] == [str(path)]
    assert "not UTF-8" in payload["errors"][0]["message"]
    assert len(payload["items"]) == 10
    assert "not UTF-8" in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize("data", [b"", b"\n\n", b" \r\n\t\r\n"])
def test_empty_dump_is_a_source_error(data):
    with pytest.raises(SourceError) as info:
        read(data, "empty.txt")
    assert info.value.source == "empty.txt"
    assert "empty" in str(info.value) and "empty.txt" in str(info.value)


def test_text_without_briefs_or_articles_is_a_source_error():
    with pytest.raises(SourceError) as info:
        read(b"Accueil\nContact\n", "menu.txt")
    assert info.value.source == "menu.txt"
    assert "\n" not in str(info.value)


def test_source_rubric_is_given_to_every_item():
    items, _ = read(SEED.read_bytes(), "seed", rubric="economie")
    assert {i.category for i in items} == {"economie"}


def test_brief_title_starting_with_a_number_right_after_the_time_is_kept():
    # The seed's own form glues the title to the time ("- 18:33TPME …"); a title may start with a number.
    items, _ = read("- 18:3320 000 manifestants à Rabat\n- 18:00Autre titre\n".encode(), "digits")
    assert [(i.title, i.published.strftime("%H:%M")) for i in items] == [
        ("20 000 manifestants à Rabat", "18:33"), ("Autre titre", "18:00")
    ]
