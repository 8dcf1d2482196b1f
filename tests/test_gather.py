"""Gather: the edition's day in the newsroom's time zone, duplicates merged, kinds guessed, the whole example."""
from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from digest.core.config import SourceSpec
from digest.core.model import Image, Item
from digest.core.text import title_key
from digest.pipeline.gather import canonical_url, deduplicate, gather, in_day
from digest.pipeline.sources import guess_kind

from support.cli import digest
from support.paths import DAY, EXAMPLES, FIXTURES, SEED, TZ, TZ_NAME

RSS = EXAMPLES / "sources" / "lequotidien-rss.xml"
ATOM = EXAMPLES / "sources" / "lequotidien-atom.xml"


def item(title: str, url: str | None = None, kind: str = "brief", hour: int = 12, **fields) -> Item:
    published = fields.pop("published", datetime(2026, 11, 29, hour, 0, tzinfo=TZ))
    return Item(kind=kind, title=title, published=published, source=fields.pop("source", "test"), url=url, **fields)



# --- the day, in Africa/Casablanca -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "utc, expected",
    [
        ("2026-11-28T23:30:00+00:00", True),   # 00:30 local on the 29th
        ("2026-11-28T23:00:00+00:00", True),   # local midnight exactly
        ("2026-11-28T22:59:59+00:00", False),  # 23:59:59 local on the 28th
        ("2026-11-29T22:59:59+00:00", True),   # 23:59:59 local
        ("2026-11-29T23:00:00+00:00", False),  # local midnight of the 30th
        ("2026-11-29T23:15:00+00:00", False),
    ],
)
def test_in_day_uses_the_newsrooms_time_zone(utc, expected):
    it = item("x", published=datetime.fromisoformat(utc))
    assert in_day(it, DAY, TZ) is expected


def test_atom_boundary_entries_argentine_in_wall_street_out():
    result = gather([SourceSpec("atom", str(ATOM))], DAY, TZ)
    titles = [i.title for i in result.items]
    argentine = "Argentine : le gouvernement annonce un nouveau plan de stabilisation du peso"
    assert argentine in titles
    assert [i.published.isoformat() for i in result.items if i.title == argentine] == ["2026-11-29T00:30:00+01:00"]
    assert not any(t.startswith("Wall Street") for t in titles)
    assert not any(t.startswith("Crédit bancaire") for t in titles)
    assert len(result.items) == 22
    assert result.out_of_day == 2


def test_rss_out_of_day_items_are_dropped():
    result = gather([SourceSpec("rss", str(RSS))], DAY, TZ)
    titles = [i.title for i in result.items]
    assert len(titles) == 25 and result.out_of_day == 3
    for dropped in ("Japon :", "Botola Pro : la RS Berkane", "Immobilier :"):
        assert not any(t.startswith(dropped) for t in titles)
    assert all(i.published.astimezone(TZ).date() == DAY for i in result.items)


def test_a_day_with_no_items_is_empty_not_an_error():
    result = gather([SourceSpec("rss", str(RSS))], date(2026, 12, 25), TZ)
    assert result.items == () and result.errors == ()
    assert result.out_of_day == 28


def test_day_filter_depends_on_the_time_zone():
    utc = gather([SourceSpec("atom", str(ATOM))], DAY, UTC)
    local = gather([SourceSpec("atom", str(ATOM))], DAY, TZ)
    assert "Argentine : le gouvernement annonce un nouveau plan de stabilisation du peso" not in [i.title for i in utc.items]
    assert any(i.title.startswith("Wall Street") for i in utc.items)
    assert {i.title for i in utc.items} != {i.title for i in local.items}


# --- both example feeds: the four planted duplicates --------------------------------------------------------


@pytest.fixture(scope="module")
def both_feeds():
    return gather([SourceSpec("rss", str(RSS)), SourceSpec("atom", str(ATOM))], DAY, TZ)


def test_both_feeds_give_43_distinct_stories(both_feeds):
    assert len(both_feeds.items) == 43
    assert both_feeds.duplicates == 4
    assert both_feeds.out_of_day == 5
    assert both_feeds.errors == ()


def test_d1_same_url_same_title_kept_once_the_article(both_feeds):
    masi = [i for i in both_feeds.items if "MASI boucle la semaine" in i.title]
    assert len(masi) == 1
    assert masi[0].kind == "article" and len(masi[0].body) >= 2  # the RSS copy carries the full text


def test_d2_same_url_different_titles_kept_once(both_feeds):
    sahel = [i for i in both_feeds.items if "Union africaine" in i.title]
    assert len(sahel) == 1
    assert canonical_url(sahel[0].url) == "//lequotidien.example.ma/international/union-africaine-sommet-extraordinaire-sahel-48111.html"


def test_d3_apostrophe_variants_kept_once_the_richer_atom_article(both_feeds):
    fmi = [i for i in both_feeds.items if "FMI relève" in i.title]
    assert len(fmi) == 1
    assert fmi[0].source == "atom" and fmi[0].kind == "article"


def test_d4_video_suffix_kept_once(both_feeds):
    tanger_med = [i for i in both_feeds.items if "Tanger Med franchit le cap" in i.title]
    assert len(tanger_med) == 1


def test_no_other_story_merged(both_feeds):
    keys = [title_key(i.title) for i in both_feeds.items]
    assert len(set(keys)) == len(keys)
    assert "Bourse de Casablanca : une petite capitalisation s’envole de 38 % en une semaine" in [i.title for i in both_feeds.items]


# --- canonical URLs and title keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "https://lequotidien.example.ma/economie/masi-48117.html",
        "https://www.lequotidien.example.ma/economie/masi-48117.html",
        "https://lequotidien.example.ma/economie/masi-48117.html?utm_source=rss&utm_medium=feed",
        "https://lequotidien.example.ma/economie/masi-48117.html?utm_campaign=x&fbclid=abc",
        "https://lequotidien.example.ma/economie/masi-48117.html#comments",
        "https://lequotidien.example.ma/economie/masi-48117.html/",
        "https://WWW.LeQuotidien.example.ma/economie/masi-48117.html?UTM_SOURCE=x#top",
        "http://lequotidien.example.ma/economie/masi-48117.html",
    ],
)
def test_canonical_url_folds_tracking_www_slash_fragment(variant):
    assert canonical_url(variant) == canonical_url("https://lequotidien.example.ma/economie/masi-48117.html")


@pytest.mark.parametrize(
    "other",
    [
        "https://lequotidien.example.ma/economie/masi-48118.html",
        "https://eco.lequotidien.example.ma/economie/masi-48117.html",
        "https://lequotidien.example.ma/economie/masi-48117.html?id=2",
        "https://lequotidien.example.ma/Economie/masi-48117.html",
    ],
)
def test_canonical_url_keeps_what_makes_another_page(other):
    assert canonical_url(other) != canonical_url("https://lequotidien.example.ma/economie/masi-48117.html?id=1")


def test_canonical_url_keeps_real_query_parameters_in_any_order():
    assert canonical_url("https://a.example/p?b=2&a=1&utm_source=x") == canonical_url("https://a.example/p?a=1&b=2")


@pytest.mark.parametrize(
    "variant",
    [
        "Le FMI relève sa prévision de croissance pour l'économie marocaine",
        "LE FMI RELÈVE SA PRÉVISION DE CROISSANCE POUR L’ÉCONOMIE MAROCAINE",
        "Le FMI releve sa prevision de croissance pour l’economie marocaine",
        "Le FMI relève sa prévision de croissance pour l’économie marocaine !",
        "Le FMI relève sa prévision de croissance pour l’économie marocaine (vidéo)",
        "Le FMI relève sa prévision de croissance pour l’économie marocaine (Photos)",
        "« Le FMI relève sa prévision de croissance pour l’économie marocaine »",
    ],
)
def test_title_key_folds_case_accents_punctuation_and_video_tag(variant):
    assert title_key(variant) == title_key("Le FMI relève sa prévision de croissance pour l’économie marocaine")


# --- deduplicate -------------------------------------------------------------------------------------------


def test_dedup_by_url_variants_keeps_one():
    items = [
        item("Titre A", "https://lequotidien.example.ma/x/story-1.html?utm_source=rss", source="rss"),
        item("Titre B tout autre", "https://www.lequotidien.example.ma/x/story-1.html#comments", source="atom"),
        item("Titre C encore autre", "https://lequotidien.example.ma/x/story-1.html/", source="web"),
        item("Autre histoire", "https://lequotidien.example.ma/x/story-2.html", source="rss"),
    ]
    kept, merged = deduplicate(items)
    assert merged == 2
    assert [i.title for i in kept] == ["Titre A", "Autre histoire"]


def test_dedup_by_near_identical_titles():
    items = [
        item("Ports : Tanger Med franchit le cap des 10 millions de conteneurs", "https://a.example/1"),
        item("Ports : Tanger Med franchit le cap des 10 millions de conteneurs (vidéo)", "https://b.example/2"),
        item("PORTS - TANGER MED FRANCHIT LE CAP DES 10 MILLIONS DE CONTENEURS", "https://c.example/3"),
        item("Ports : Tanger Med franchit le cap des 10 millions de conteneurs.", None),
    ]
    kept, merged = deduplicate(items)
    assert merged == 3 and len(kept) == 1


def test_dedup_keeps_the_richest_copy():
    brief = item("Le Raja s’offre le derby face au Wydad", "https://a.example/derby", source="atom")
    article = item(
        "Le Raja s'offre le derby face au Wydad (vidéo)", None, kind="article", source="rss",
        body=("Premier paragraphe du compte rendu du derby.", "Second paragraphe."),
    )
    kept, merged = deduplicate([brief, article])
    assert merged == 1
    assert kept == [article]


def test_dedup_richer_copy_with_image_and_category_wins_and_category_is_kept():
    plain = item("Match nul entre le Hassania d’Agadir et le MAS", "https://a.example/m", source="a", category="Sport")
    linked = item(
        "Match nul entre le Hassania d'Agadir et le MAS", "https://b.example/m", source="b",
        image=Image("https://b.example/m.jpg", "photo"),
    )
    kept, _ = deduplicate([plain, linked])
    assert len(kept) == 1
    assert kept[0].source == "a"  # a category ranks above an image
    bare = item("Match nul entre le Hassania d’Agadir et le MAS", None, source="c")
    kept, _ = deduplicate([bare, linked])
    assert kept[0].source == "b" and kept[0].image is not None


def test_dedup_category_of_a_dropped_copy_is_kept():
    rich = item("Tourisme : arrivées en hausse de 14 %", None, kind="article", body=("Texte.",), source="a")
    tagged = item("Tourisme : arrivées en hausse de 14 %", "https://b.example/t", source="b", category="Économie")
    kept, _ = deduplicate([tagged, rich])
    assert kept[0].source == "a"
    assert kept[0].category == "Économie"


def test_dedup_equal_copies_keep_the_first():
    a = item("Même titre exactement pour les deux", None, source="first")
    b = item("Même titre exactement pour les deux", None, source="second")
    kept, _ = deduplicate([a, b])
    assert [i.source for i in kept] == ["first"]


@pytest.mark.parametrize(
    "first, second",
    [
        ("Bourse de Casablanca : le MASI termine en hausse", "Bourse de Casablanca : le MASI termine en baisse"),
        ("Inflation : l’indice des prix recule de 0,3 % en octobre", "Inflation : l’indice des prix recule de 0,3 % en novembre"),
        ("Botola Pro : le Raja bat le FUS de Rabat", "Botola Pro : le Wydad bat le FUS de Rabat"),
        ("Météo : alerte orange à la neige dans l’Atlas ce lundi", "Météo : alerte orange à la pluie dans le Rif ce lundi"),
        ("Bourse de Casablanca : le MASI boucle la semaine sur un gain de 1,8 %",
         "Bourse de Casablanca : une petite capitalisation s’envole de 38 % en une semaine"),
    ],
    ids=["masi-hausse-baisse", "inflation-octobre-novembre", "raja-wydad", "meteo-neige-pluie", "masi-petite-cap"],
)
def test_dedup_keeps_distinct_stories_that_share_words(first, second):
    kept, merged = deduplicate([item(first, None, hour=10), item(second, None, hour=11)])
    assert merged == 0
    assert [i.title for i in kept] == [first, second]


def test_dedup_does_not_merge_same_title_words_from_different_urls_when_titles_differ():
    items = [
        item("Bourse de Casablanca : séance du matin", "https://a.example/1"),
        item("Culture : le Festival de Fès", "https://a.example/2"),
    ]
    kept, merged = deduplicate(items)
    assert merged == 0 and len(kept) == 2


def test_gather_merges_across_sources_and_counts(tmp_path):
    one = tmp_path / "one.txt"
    two = tmp_path / "two.txt"
    one.write_text("- 20:55Immo Expo By Avito 2025 : le salon qui réinvente le marché\n- 20:00Autre brève du soir\n", encoding="utf-8")
    two.write_text("- 20:50IMMO EXPO BY AVITO 2025 – LE SALON QUI RÉINVENTE LE MARCHÉ (vidéo)\n", encoding="utf-8")
    result = gather([SourceSpec("one", str(one)), SourceSpec("two", str(two))], DAY, TZ)
    assert result.duplicates == 1
    assert [i.title for i in result.items] == [
        "Immo Expo By Avito 2025 : le salon qui réinvente le marché", "Autre brève du soir"
    ]


# --- guess_kind --------------------------------------------------------------------------------------------

KINDS = {
    **{f"tests/fixtures/feeds/{name}": "feed" for name in (
        "rss2.xml", "rss1.rdf", "atom.xml", "feed.json", "latin1.xml", "broken-encoding.xml", "truncated.xml",
        "no-dates.xml", "empty.xml", "hostile.xml", "not-a-feed.html")},
    **{f"tests/fixtures/pagedumps/{name}": "pagedump" for name in ("other-day.txt", "arabic.txt", "two-articles.txt")},
    "examples/sources/homepage-2026-11-29.txt": "pagedump",
    "examples/sources/lequotidien-rss.xml": "feed",
    "examples/sources/lequotidien-atom.xml": "feed",
    "examples/features/2026-11-29-dessalement.md": "markdown",
    "examples/features/2026-11-29-festival-marrakech.md": "markdown",
}


@pytest.mark.parametrize("relative, kind", sorted(KINDS.items()))
def test_guess_kind_for_each_fixture(relative, kind):
    path = FIXTURES.parent.parent / relative
    assert guess_kind(str(path), path.read_bytes()) == kind


@pytest.mark.parametrize("relative, kind", sorted((k, v) for k, v in KINDS.items() if not k.endswith("empty.xml")))
def test_guess_kind_from_content_alone(relative, kind):
    """Served from an address with no file extension, the content still decides (empty.xml has no content)."""
    path = FIXTURES.parent.parent / relative
    data = path.read_bytes()
    assert guess_kind("http://127.0.0.1:8000/latest", data) == kind


def test_guess_kind_for_the_seed():
    assert guess_kind(str(SEED), SEED.read_bytes()) == "pagedump"
    assert guess_kind("https://example.ma/une", SEED.read_bytes(), "text/plain; charset=utf-8") == "pagedump"


def test_guess_kind_uses_the_content_type_for_a_feed_url():
    assert guess_kind("https://example.ma/flux?format=rss", b"<rss version='2.0'></rss>", "application/rss+xml") == "feed"
    assert guess_kind("https://example.ma/flux", b'{"items": []}', "application/feed+json") == "feed"


# --- the whole example --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_json(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli")
    result = digest("gather", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--format", "json", cwd=cwd)
    return result


def test_example_config_gather_exits_0(example_json):
    assert example_json.returncode == 0, example_json.stderr
    payload = json.loads(example_json.stdout)
    assert payload["date"] == "2026-11-29"
    assert payload["timezone"] == TZ_NAME
    assert payload["errors"] == []


def test_example_config_has_enough_items_and_rubrics(example_json):
    payload = json.loads(example_json.stdout)
    items = payload["items"]
    assert len(items) >= 40
    assert len({i["rubric"] for i in items}) >= 6
    assert all(i["published"].startswith("2026-11-29T") and i["published"].endswith("+01:00") for i in items)
    assert all(isinstance(i["score"], (int, float)) for i in items)


def test_example_config_seed_bourse_brief_is_in_economie(example_json):
    items = json.loads(example_json.stdout)["items"]
    [bourse] = [i for i in items if i["title"] == "Légère progression à la Bourse de Casablanca malgré des indices mitigés"]
    assert bourse["rubric"] == "economie"
    assert bourse["kind"] == "brief"
    assert bourse["published"] == "2026-11-29T19:30:00+01:00"
    assert bourse["url"] is None


def test_example_config_each_seed_brief_present_once(example_json):
    items = json.loads(example_json.stdout)["items"]
    counts = Counter(i["title"] for i in items)
    seed_titles = [line[7:] for line in SEED.read_text(encoding="utf-8").split("\n") if re.match(r"^- \d\d:\d\d", line)]
    assert len(seed_titles) == 9
    for title in seed_titles:
        assert counts[title] == 1, title
    assert counts["Bourita et Blinken renforcent les liens Maroco-Américains à Washington"] == 1


def test_example_config_features_and_no_planted_duplicate_twice(example_json):
    items = json.loads(example_json.stdout)["items"]
    titles = [i["title"] for i in items]
    assert len(titles) == len(set(titles))
    assert sum("Tanger Med franchit le cap" in t for t in titles) == 1
    assert sum("MASI boucle la semaine" in t for t in titles) == 1
    festival = [i for i in items if i["title"].startswith("Festival international du film de Marrakech")]
    assert len(festival) == 1 and festival[0]["url"] == "https://lequotidien.example.ma/culture/festival-marrakech-2026.html"
    assert festival[0]["rubric"] == "culture"


def test_cli_bad_date_is_a_usage_error(tmp_path):
    result = digest("gather", "--source", str(SEED), "--date", "29/11/2026", "--format", "json", cwd=tmp_path)
    assert result.returncode == 2
    assert "--date" in result.stderr
    assert result.stdout == ""


def test_cli_missing_source_file_exits_1_naming_it(tmp_path):
    missing = tmp_path / "absent.txt"
    result = digest(
        "gather", "--source", str(missing), "--source", str(SEED), "--date", "2026-11-29", "--timezone", TZ_NAME,
        "--format", "json", cwd=tmp_path,
    )
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert [e["source"] for e in payload["errors"]] == [str(missing)]
    assert len(payload["items"]) == 10
