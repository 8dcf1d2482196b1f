"""Each check passes on the example edition and fails, naming the place, on an email that breaks it."""
from __future__ import annotations

import pytest

from digest.core.model import Rendered, Variant
from digest.web import checks

from support.cli import digest
from support.paths import EXAMPLES

GOOD_BODY = (
    '<div style="display:none;font-size:1px;color:#ffffff">un aperçu caché</div>'
    '<div style="background-color:#ffffff;font-size:16px;color:#1a1a1a">'
    '<h1 style="font-size:28px">Le Quotidien</h1><p>Texte lisible.</p>'
    '<img src="https://x.example/a.jpg" alt="Une photo">'
    '<a href="https://x.example/unsubscribe/__DIGEST_TOKEN__" style="color:#1d3557">Se désabonner</a></div>'
)
SUBJECT = "Le Quotidien · 29 novembre — À la une"
PREHEADER = "Les titres du jour, de la politique au sport, en quelques lignes."


def rendered(body: str = GOOD_BODY, subject: str = SUBJECT, preheader: str = PREHEADER) -> Rendered:
    return Rendered(Variant(), subject, preheader, f"<!doctype html><html><body>{body}</body></html>", "")


def by_name(result, name):
    return next(c for c in result if c.name == name)


def test_a_good_email_passes_every_check():
    result = checks.run(rendered())
    assert checks.failed(result) == []
    assert [c.name for c in result] == ["size", "alt text", "links", "one h1", "text size", "contrast", "unsubscribe",
                                        "subject", "preheader"]


@pytest.mark.parametrize(
    "body, name, detail",
    [
        (GOOD_BODY.replace(' alt="Une photo"', ""), "alt text", "https://x.example/a.jpg"),
        (GOOD_BODY.replace('alt="Une photo"', 'alt=" "'), "alt text", "https://x.example/a.jpg"),
        (GOOD_BODY + '<a href="http://x.example/b">b</a>', "links", 'href="http://x.example/b"'),
        (GOOD_BODY + '<a href="/relative">r</a>', "links", 'href="/relative"'),
        (GOOD_BODY + '<img src="cid:logo" alt="logo">', "links", 'src="cid:logo"'),
        (GOOD_BODY + "<h1>Deux</h1>", "one h1", None),
        (GOOD_BODY.replace("<h1", "<h2").replace("</h1>", "</h2>"), "one h1", None),
        (GOOD_BODY + '<p style="font-size:12px">Petits caractères</p>', "text size", "12px: Petits caractères"),
        (GOOD_BODY + '<td style="font-size:13px"><span>hérité</span></td>', "text size", "13px: hérité"),
        (GOOD_BODY + '<p style="color:#aaaaaa">Gris pâle</p>', "contrast", "Gris pâle"),
        (GOOD_BODY + '<div style="background:#1d3557"><p style="color:#333333">Sombre sur sombre</p></div>',
         "contrast", "Sombre sur sombre"),
        (GOOD_BODY.replace("/unsubscribe/__DIGEST_TOKEN__", "/desinscription"), "unsubscribe", None),
        # A feed's own "/unsubscribe/" link is not the reader's unsubscribe link.
        (GOOD_BODY.replace("/unsubscribe/__DIGEST_TOKEN__", "/x") + '<a href="https://feed.example/unsubscribe/42">x</a>',
         "unsubscribe", None),
        ('<p style="font-size:16px">' + "x" * 101_000 + "</p>" + GOOD_BODY, "unsubscribe", None),
        ('<p style="font-size:16px">' + "x" * 101_000 + "</p>" + GOOD_BODY, "size", None),
    ],
)
def test_each_check_fails_where_it_should(body, name, detail):
    result = checks.run(rendered(body))
    check = by_name(result, name)
    assert not check.ok, check
    if detail:
        assert any(detail in d for d in check.details), check.details
    others = [c.name for c in checks.failed(result) if c.name not in (name, "size", "unsubscribe")]
    assert others == []


def test_large_bold_text_needs_only_3_to_1():
    ok = GOOD_BODY + '<h2 style="font-size:24px;color:#767676">Grand titre</h2>'  # 4.54:1 would pass anyway
    assert by_name(checks.run(rendered(ok)), "contrast").ok
    large = GOOD_BODY + '<h2 style="font-size:24px;color:#8a8a8a">Grand titre</h2>'  # about 3.5:1
    assert by_name(checks.run(rendered(large)), "contrast").ok
    small = GOOD_BODY + '<p style="font-size:16px;color:#8a8a8a">Petit texte</p>'
    assert not by_name(checks.run(rendered(small)), "contrast").ok


@pytest.mark.parametrize("subject, preheader, name", [("", PREHEADER, "subject"), ("x" * 101, PREHEADER, "subject"),
                                                      (SUBJECT, "court", "preheader"), (SUBJECT, "y" * 151, "preheader")])
def test_subject_and_preheader_lengths(subject, preheader, name):
    assert not by_name(checks.run(rendered(subject=subject, preheader=preheader)), name).ok


def test_contrast_formula_matches_wcag():
    assert checks.contrast((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert checks.contrast(checks.parse_color("#767676"), checks.parse_color("#ffffff")) == pytest.approx(4.54, abs=0.01)
    assert checks.parse_color("#abc") == checks.parse_color("#aabbcc")


def test_build_check_passes_on_the_example_and_fails_with_a_bad_theme(tmp_path):
    ok = digest("build", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--out", str(tmp_path / "ok"),
                "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Checks:" in ok.stdout and "FAIL" not in ok.stdout

    theme = tmp_path / "theme" / "email"
    theme.mkdir(parents=True)
    (theme / "style.css").write_text(".excerpt { font-size: 12px; color: #bbbbbb; }\n", encoding="utf-8")
    config = tmp_path / "digest.toml"
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8").replace('path = "', f'path = "{EXAMPLES}/')
    config.write_text(text.replace('# theme = "theme"', f'theme = "{tmp_path / "theme"}"'), encoding="utf-8")
    bad = digest("build", "-c", str(config), "--date", "2026-11-29", "--out", str(tmp_path / "bad"), "--check")
    assert bad.returncode == 1
    assert "FAIL  text size" in bad.stdout and "FAIL  contrast" in bad.stdout
    assert "check(s) failed" in bad.stderr and "Traceback" not in bad.stderr
