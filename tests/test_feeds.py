"""Feeds: each format from bytes and over a real local HTTP server, broken feeds, failing servers, hostile HTML."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.pipeline.gather import gather
from digest.pipeline.sources import Context, Fetched, feed, fetch_all

from support.cli import digest
from support.paths import DAY, EXAMPLES, FIXTURES, SEED, TZ, TZ_NAME
from support.ports import refusing_port

FEEDS = FIXTURES / "feeds"
BASE = "https://fixtures.example.ma/"

# file → [(title, local time, category, link)] in the file's order
EXPECTED = {
    "rss2.xml": [
        ("Nador West Med accueille son premier porte-conteneurs", "09:00", "Économie",
         "transport/nador-west-med-premier-porte-conteneurs-101.html"),
        ("Al Boraq : ouverture des réservations pour la ligne Kénitra–Marrakech", "11:30", "Société",
         "transport/al-boraq-reservations-kenitra-marrakech-102.html"),
        ("Aéroport Mohammed V : le nouveau terminal atteint sa pleine capacité", "14:15", "Économie",
         "transport/aeroport-mohammed-v-terminal-pleine-capacite-103.html"),
        ("Autoroute Tit Mellil–Berrechid : mise en service du dernier tronçon", "17:45", "Société",
         "transport/autoroute-tit-mellil-berrechid-dernier-troncon-104.html"),
    ],
    "rss1.rdf": [
        ("Campagne agricole : les semis d’automne couvrent 2,8 millions d’hectares", "07:30", "Économie",
         "agriculture/semis-automne-2-8-millions-hectares-201.html"),
        ("Olives : la récolte s’annonce abondante dans la région de Fès-Meknès", "12:10", "Économie",
         "agriculture/olives-recolte-abondante-fes-meknes-202.html"),
        ("Agrumes : premières exportations de clémentines vers le Canada", "19:20", "Économie",
         "agriculture/agrumes-clementines-exportations-canada-203.html"),
    ],
    "atom.xml": [
        ("Le Festival des musiques sacrées de Fès dévoile sa programmation", "10:00", "Culture",
         "culture/fes-musiques-sacrees-programmation-301.html"),
        ("Jazzablanca annonce une édition anniversaire", "14:30", "Culture",
         "culture/jazzablanca-edition-anniversaire-302.html"),
        ("Le prix Grand Atlas récompense un premier roman", "20:05", "Culture",
         "culture/prix-grand-atlas-premier-roman-303.html"),
    ],
    "feed.json": [
        ("Athlétisme : le marathon de Casablanca bat son record de participation", "08:00", "Sport",
         "sport/marathon-casablanca-record-participation-401.html"),
        ("Tennis : le Maroc qualifié pour les barrages de la Coupe Davis", "12:45", "Sport",
         "sport/tennis-maroc-barrages-coupe-davis-402.html"),
        ("Handball : le Maroc en finale du championnat d’Afrique juniors", "16:30", "sport",
         "sport/handball-finale-championnat-afrique-juniors-403.html"),
        ("Surf : Taghazout accueille une étape du circuit mondial", "21:10", "Sport",
         "sport/surf-taghazout-etape-circuit-mondial-404.html"),
    ],
    "latin1.xml": [
        ("Économie : la Bourse de Casablanca termine en hausse", "10:00", "Économie",
         "latin1/bourse-casablanca-termine-hausse-501.html"),
        ("Société : la médina de Fès célèbre la journée du patrimoine", "13:20", "Société",
         "latin1/medina-fes-journee-patrimoine-502.html"),
        ("Culture : « Âmes de l'Atlas » à l'affiche au Théâtre national Mohammed V", "18:40", "Culture",
         "latin1/ames-atlas-theatre-national-503.html"),
    ],
}
HOSTILE = ("<script", "javascript:", "onerror", "onclick", "<iframe", "<form", "data:")
GOOD_TITLES = [t for t, *_ in EXPECTED["rss2.xml"]]


def read_file(filename: str, name: str | None = None):
    warnings: list[str] = []
    name = name or filename
    items = feed.read((FEEDS / filename).read_bytes(), Context(SourceSpec(name, name), DAY, TZ, warnings.append))
    return items, warnings


def as_rows(items):
    return [
        (i.title, i.published.isoformat(), i.category, i.url) for i in items
    ]


def expected_rows(filename):
    return [(t, f"2026-11-29T{hhmm}:00+01:00", cat, BASE + path) for t, hhmm, cat, path in EXPECTED[filename]]


def assert_one_line_error(error: SourceError, name: str) -> str:
    text = str(error)
    assert error.source == name
    assert name in text
    assert "\n" not in text and "\r" not in text
    assert "Traceback" not in text
    return text



# --- each format, from file bytes -----------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["rss2.xml", "rss1.rdf", "atom.xml"])
def test_feed_format_read_from_bytes(filename):
    items, warnings = read_file(filename)
    assert as_rows(items) == expected_rows(filename)
    assert all(i.published.utcoffset().total_seconds() == 3600 for i in items)
    assert all(i.source == filename for i in items)
    assert warnings == []


def test_json_feed_read_from_bytes():
    items, _ = read_file("feed.json")
    assert [(t, p, u) for t, p, _, u in as_rows(items)] == [(t, p, u) for t, p, _, u in expected_rows("feed.json")]
    assert [i.category.casefold() for i in items] == ["sport"] * 4


def test_rss2_gmt_pubdate_is_converted_to_local_time():
    items, _ = read_file("rss2.xml")
    assert items[3].published.isoformat() == "2026-11-29T17:45:00+01:00"


def test_rss1_dc_date_in_utc_is_converted_to_local_time():
    items, _ = read_file("rss1.rdf")
    assert items[2].published.isoformat() == "2026-11-29T19:20:00+01:00"


def test_atom_summary_and_content_give_the_text():
    items, _ = read_file("atom.xml")
    assert items[0].summary == "Une trentaine de concerts sont annoncés dans les jardins de Jnan Sbil et à Bab Al Makina."
    assert "vingt ans" in items[1].summary or "vingt ans" in " ".join(items[1].body)
    assert all(i.kind == "brief" for i in items)


def test_rss2_summary_is_plain_text_without_tags():
    items, _ = read_file("rss2.xml")
    assert items[0].summary == "Le nouveau port de la Méditerranée orientale a reçu dimanche matin son premier navire commercial."


def test_latin1_feed_is_decoded_right():
    items, warnings = read_file("latin1.xml")
    assert as_rows(items) == expected_rows("latin1.xml")
    assert items[0].summary == "Le MASI a gagné 0,6 % lors d'une séance spéciale de fin de mois."
    assert warnings == []


def test_broken_encoding_feed_gives_accented_titles_and_a_warning():
    items, warnings = read_file("broken-encoding.xml", "broken")
    assert [i.title for i in items] == [
        "Santé : lancement de la campagne de vaccination contre la grippe",
        "Régions : la récolte de dattes démarre à Errachidia",
        "Marchés : le dirham stable face à l'euro",
    ]
    assert [i.category for i in items] == ["Société", "Société", "Économie"]
    assert [i.published.strftime("%H:%M") for i in items] == ["09:40", "12:00", "17:05"]
    assert all("\ufffd" not in i.title for i in items)
    assert len(warnings) == 1 and "broken" in warnings[0]


def test_truncated_feed_yields_the_complete_items_with_a_warning():
    items, warnings = read_file("truncated.xml", "tronque")
    assert [(i.title, i.published.isoformat()) for i in items] == [
        ("Premier article complet : le port de Safi modernise ses quais", "2026-11-29T08:10:00+01:00"),
        ("Deuxième article complet : Essaouira accueille un forum sur l’océan", "2026-11-29T11:25:00+01:00"),
    ]
    assert warnings and all("tronque" in w for w in warnings)
    assert any("item 3" in w for w in warnings)
    assert all("Troisième" not in i.title for i in items)


def test_no_dates_feed_keeps_usable_items_and_names_the_rest():
    items, warnings = read_file("no-dates.xml", "sans-dates")
    assert [i.url for i in items] == [
        BASE + "sans-date/ifrane-premiere-neige-801.html",
        BASE + "sans-date/sans-titre-803.html",
    ]
    assert items[0].title == "Ifrane : première chute de neige de la saison"
    assert items[0].published.isoformat() == "2026-11-29T07:50:00+01:00"
    assert items[1].published.isoformat() == "2026-11-29T19:15:00+01:00"
    assert all("Oujda" not in i.title for i in items)
    assert len(warnings) == 1
    assert "sans-dates" in warnings[0] and "item 2" in warnings[0] and "no date" in warnings[0]


def test_no_dates_untitled_item_takes_its_whole_short_description_as_title():
    items, _ = read_file("no-dates.xml", "sans-dates")
    untitled = items[1]
    # The description is 80 characters: nothing needs cutting, so no word may be lost.
    assert untitled.title.rstrip(". ") == "Larache : la corniche rénovée rouvre au public après dix-huit mois de travaux"


def test_empty_feed_is_a_source_error_naming_it():
    with pytest.raises(SourceError) as info:
        read_file("empty.xml", "vide")
    text = assert_one_line_error(info.value, "vide")
    assert "empty" in text


def test_html_page_is_a_clear_source_error():
    with pytest.raises(SourceError) as info:
        read_file("not-a-feed.html", "page")
    text = assert_one_line_error(info.value, "page")
    assert "HTML" in text and "not RSS, Atom or JSON Feed" in text


def test_feed_with_channel_but_no_items_warns_and_gives_nothing():
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    warnings: list[str] = []
    items = feed.read(data, Context(SourceSpec("vide", "vide"), DAY, TZ, warnings.append))
    assert items == []
    assert len(warnings) == 1 and "vide" in warnings[0]


# --- over the local HTTP server, through gather ------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("filename", ["rss2.xml", "rss1.rdf", "atom.xml", "latin1.xml"])
def test_feed_format_through_gather_from_http(feed_server, filename):
    url = feed_server.url(f"tests/fixtures/feeds/{filename}")
    result = gather([SourceSpec(filename, url)], DAY, TZ)
    assert result.errors == ()
    assert as_rows(result.items) == expected_rows(filename)
    assert result.out_of_day == 0 and result.duplicates == 0


@pytest.mark.network
def test_json_feed_through_gather_from_http(feed_server):
    url = feed_server.url("tests/fixtures/feeds/feed.json")
    result = gather([SourceSpec("json", url)], DAY, TZ)
    assert [str(e) for e in result.errors] == []
    assert [(i.title, i.published.isoformat(), i.url) for i in result.items] == [
        (t, p, u) for t, p, _, u in expected_rows("feed.json")
    ]


def _gather_with_good(feed_server, bad: SourceSpec, timeout: float = 10.0):
    good = SourceSpec("bon", feed_server.url("tests/fixtures/feeds/rss2.xml"))
    started = time.monotonic()
    result = gather([good, bad], DAY, TZ, timeout=timeout)
    return result, time.monotonic() - started


def _assert_failed_alone(result, name: str) -> str:
    assert [i.title for i in result.items] == GOOD_TITLES
    assert len(result.errors) == 1
    return assert_one_line_error(result.errors[0], name)


@pytest.mark.network
def test_http_404_is_one_error_and_the_other_source_still_gives_its_items(feed_server):
    bad = SourceSpec("absent", feed_server.url("tests/fixtures/feeds/no-such-feed.xml"))
    result, _ = _gather_with_good(feed_server, bad)
    assert "404" in _assert_failed_alone(result, "absent")


@pytest.mark.network
def test_http_500_is_one_error_and_the_other_source_still_gives_its_items(feed_server):
    bad = SourceSpec("panne", feed_server.route("/panne.xml", 500, b"Internal Server Error", {"Content-Type": "text/plain"}))
    result, _ = _gather_with_good(feed_server, bad)
    assert "500" in _assert_failed_alone(result, "panne")


@pytest.mark.network
def test_connection_refused_is_one_error_and_the_other_source_still_gives_its_items(feed_server):
    with refusing_port() as port:
        bad = SourceSpec("fermé", f"http://127.0.0.1:{port}/feed.xml")
        result, _ = _gather_with_good(feed_server, bad)
    _assert_failed_alone(result, "fermé")


@pytest.mark.network
def test_slow_source_times_out_and_the_other_source_still_gives_its_items(feed_server):
    feed_server.route("/lent.xml", 200, (FEEDS / "atom.xml").read_bytes(), {"Content-Type": "application/atom+xml"})
    bad = SourceSpec("lent", feed_server.hang("/lent.xml"))
    # The slow source never answers while the test runs; the good one has 3 s, ample even on a busy
    # machine. The bound only tells "stopped at the timeout" from "waited for the server" (120 s);
    # about 3 s here, loose for a machine whose cores are busy.
    result, elapsed = _gather_with_good(feed_server, bad, timeout=3.0)
    text = _assert_failed_alone(result, "lent")
    assert "in time" in text
    assert elapsed < 60


@pytest.mark.network
@pytest.mark.parametrize("filename", ["not-a-feed.html", "empty.xml"])
def test_unusable_document_over_http_is_one_error(feed_server, filename):
    bad = SourceSpec("mauvais", feed_server.url(f"tests/fixtures/feeds/{filename}"))
    result, _ = _gather_with_good(feed_server, bad)
    _assert_failed_alone(result, "mauvais")


@pytest.mark.network
def test_html_page_served_as_200_rss_is_one_error(feed_server):
    body = (FEEDS / "not-a-feed.html").read_bytes()
    bad = SourceSpec("html", feed_server.route("/rss.xml", 200, body, {"Content-Type": "application/rss+xml"}))
    result, _ = _gather_with_good(feed_server, bad)
    assert "HTML" in _assert_failed_alone(result, "html")


@pytest.mark.network
@pytest.mark.parametrize("filename", ["broken-encoding.xml", "truncated.xml", "no-dates.xml"])
def test_damaged_feed_over_http_keeps_usable_items_with_a_named_warning(feed_server, filename):
    spec = SourceSpec("abime", feed_server.url(f"tests/fixtures/feeds/{filename}"))
    result = gather([spec], DAY, TZ)
    assert result.errors == ()
    assert len(result.items) in (2, 3)
    assert result.warnings and all("abime" in w for w in result.warnings)


@pytest.mark.network
def test_all_failures_in_one_gather_are_reported_in_order(feed_server):
    feed_server.route("/lent.xml", 200, b"", {})
    feed_server.hang("/lent.xml")
    with refusing_port() as refused:
        specs = [
            SourceSpec("a404", feed_server.url("nope.xml")),
            SourceSpec("bon", feed_server.url("tests/fixtures/feeds/atom.xml")),
            SourceSpec("a500", feed_server.route("/e500", 500, b"x")),
            SourceSpec("refus", f"http://127.0.0.1:{refused}/x.xml"),
            SourceSpec("lent", feed_server.url("/lent.xml")),
            SourceSpec("html", feed_server.url("tests/fixtures/feeds/not-a-feed.html")),
        ]
        result = gather(specs, DAY, TZ, timeout=3.0)  # ample for the others on a busy machine
    assert [e.source for e in result.errors] == ["a404", "a500", "refus", "lent", "html"]
    for error in result.errors:
        assert_one_line_error(error, error.source)
    assert [i.title for i in result.items] == [t for t, *_ in EXPECTED["atom.xml"]]


@pytest.mark.network
def test_fetch_all_returns_bytes_or_errors_in_the_order_given(feed_server, tmp_path):
    local = tmp_path / "local.xml"
    local.write_bytes(b"<rss/>")
    specs = [
        SourceSpec("http", feed_server.url("tests/fixtures/feeds/rss2.xml")),
        SourceSpec("missing", str(tmp_path / "missing.xml")),
        SourceSpec("local", str(local)),
        SourceSpec("a404", feed_server.url("nope.xml")),
    ]
    results = asyncio.run(fetch_all(specs, 5.0))
    assert isinstance(results[0], Fetched) and results[0].data == (FEEDS / "rss2.xml").read_bytes()
    assert isinstance(results[1], SourceError) and results[1].source == "missing"
    assert isinstance(results[2], Fetched) and results[2].data == b"<rss/>"
    assert isinstance(results[3], SourceError) and results[3].source == "a404"


@pytest.mark.network
def test_cli_with_a_failing_url_exits_1_and_still_prints_the_rest(feed_server, tmp_path):
    bad = feed_server.url("tests/fixtures/feeds/no-such-feed.xml")
    good = feed_server.url("tests/fixtures/feeds/rss2.xml")
    result = digest(
        "gather", "--source", str(SEED), "--source", bad, "--source", good, "--date", "2026-11-29",
        "--timezone", TZ_NAME, "--format", "json", cwd=tmp_path,
    )
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert [e["source"] for e in payload["errors"]] == [bad]
    assert "404" in payload["errors"][0]["message"]
    titles = {i["title"] for i in payload["items"]}
    assert set(GOOD_TITLES) <= titles
    assert len(payload["items"]) == 14
    assert bad in result.stderr


# --- hostile content -------------------------------------------------------------------------------------


def _texts(item):
    return [item.title, item.summary, *item.body, item.image.alt if item.image else ""]


def _assert_harmless(items):
    for item in items:
        for text in _texts(item):
            lowered = text.lower()
            for marker in HOSTILE:
                assert marker not in lowered, (marker, item.title, text)
        assert "\r" not in item.title and "\n" not in item.title
        assert item.url is None or item.url.startswith(("https://", "http://"))
        assert item.image is None or item.image.url.startswith("https://")


def test_hostile_fixture_feed_is_harmless_text():
    items, _ = read_file("hostile.xml")
    assert len(items) == 2
    _assert_harmless(items)
    assert items[0].title.startswith("Alerte sécurité")
    assert "Des courriels piégés circulent." in items[0].summary
    assert "alert(" not in items[0].summary


def test_hostile_item_of_the_example_rss_is_harmless_text():
    warnings: list[str] = []
    data = (EXAMPLES / "sources" / "lequotidien-rss.xml").read_bytes()
    items = feed.read(data, Context(SourceSpec("rss", "rss"), DAY, TZ, warnings.append))
    _assert_harmless(items)
    [hostile] = [i for i in items if "DGSSI" in i.title]
    assert hostile.title == "Cybersécurité : la DGSSI alerte sur une vague d’hameçonnage visant les clients des banques"
    assert hostile.url == "https://lequotidien.example.ma/tech/dgssi-alerte-hameconnage-banques-48107.html"
    assert hostile.kind == "article" and len(hostile.body) >= 2
    assert all("alert(" not in t for t in _texts(hostile))


def test_hostile_content_never_reaches_the_cli_json(tmp_path):
    result = digest(
        "gather", "--source", str(FEEDS / "hostile.xml"), "--source", str(EXAMPLES / "sources" / "lequotidien-rss.xml"),
        "--date", "2026-11-29", "--timezone", TZ_NAME, "--format", "json", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    for item in payload["items"]:
        for text in (item["title"], item["summary"] or "", *item.get("body", [])):
            for marker in HOSTILE:
                assert marker not in text.lower(), (marker, text)
        assert "\n" not in item["title"] and "\r" not in item["title"]


HOSTILE_LINKS_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>liens</title>
<item><title>Lien script</title><link>javascript:alert(1)</link><pubDate>Sun, 29 Nov 2026 10:30:00 +0100</pubDate></item>
<item><title>Lien data</title><link>data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg==</link><pubDate>Sun, 29 Nov 2026 10:40:00 +0100</pubDate></item>
<item><title>Lien sain</title><link>https://fixtures.example.ma/sain.html</link><pubDate>Sun, 29 Nov 2026 10:50:00 +0100</pubDate></item>
</channel></rss>"""

HOSTILE_JSON_FEED = json.dumps({
    "version": "https://jsonfeed.org/version/1.1",
    "title": "hostile",
    "items": [
        {"id": "1", "url": "JaVaScRiPt:alert(1)", "title": "<img src=x onerror=alert(1)>Titre JSON",
         "content_html": '<p onclick="x()">Texte</p><script>alert(2)</script><iframe src="https://evil.example/"></iframe>',
         "date_published": "2026-11-29T10:00:00+01:00"},
    ],
}).encode()


@pytest.mark.parametrize("data", [HOSTILE_LINKS_RSS, HOSTILE_JSON_FEED], ids=["rss", "jsonfeed"])
def test_feed_item_links_are_limited_to_web_addresses(data):
    items = feed.read(data, Context(SourceSpec("liens", "liens"), DAY, TZ, lambda _: None))
    assert items, "the items themselves are usable"
    _assert_harmless(items)
    for item in items:
        assert item.url is None or item.url.startswith(("https://", "http://")), item.url


def test_json_feed_hostile_html_becomes_harmless_text():
    [item] = feed.read(HOSTILE_JSON_FEED, Context(SourceSpec("j", "j"), DAY, TZ, lambda _: None))
    assert item.title == "Titre JSON"
    for text in _texts(item):
        for marker in HOSTILE:
            assert marker not in text.lower()
