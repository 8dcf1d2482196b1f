"""Typography per language, from the one module that holds its rules, on every text a reader sees:
the email, its text twin, the web pages; never inside a link."""
from __future__ import annotations

import re

import pytest

from digest.core.config import load
from digest.core.model import Variant
from digest.pipeline import i18n
from digest.pipeline.archive import edition_page
from digest.pipeline.edition import prepare
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer
from digest.pipeline.typography import NBSP, NNBSP, phrase, typeset

from support.items import item, parse
from support.paths import DAY, EXAMPLES, TZ_NAME


@pytest.mark.parametrize(("text", "expected"), [
    ("Maroc-UE : Bourita reçoit", f"Maroc-UE{NBSP}: Bourita reçoit"),
    ("Maroc: vraiment?", f"Maroc{NBSP}: vraiment{NNBSP}?"),
    ("Quoi ?! Non ; oui !", f"Quoi{NNBSP}?! Non{NNBSP}; oui{NNBSP}!"),
    ("« Nous sommes dans les temps »", f"«{NNBSP}Nous sommes dans les temps{NNBSP}»"),
    ('il dit "oui" à l\'usine', f"il dit «{NNBSP}oui{NNBSP}» à l’usine"),
    ("2,1 % et 38% ; 20 000 et 1 500 000 dirhams", f"2,1{NNBSP}% et 38{NNBSP}%{NNBSP}; 20{NNBSP}000 et 1{NNBSP}500{NNBSP}000 dirhams"),
    ("à 20:55, score 2-1", "à 20:55, score 2-1"),  # a time is no colon of a sentence
    ("12 boulevard Anfa, 20000 Casablanca", "12 boulevard Anfa, 20000 Casablanca"),  # a postal code is no number
    ("Lire : https://x.ma/a?b=1;c:d ! mail a@b.ma ?", f"Lire{NBSP}: https://x.ma/a?b=1;c:d{NNBSP}! mail a@b.ma{NNBSP}?"),
])
def test_french_rules(text, expected):
    assert typeset(text, "fr") == expected
    assert typeset(text, "fr-MA") == expected


def test_english_quotes_and_arabic_left_as_written():
    assert typeset('it\'s "great" and \'fine\'', "en") == "it’s “great” and ‘fine’"
    assert typeset("Note: 20 000 people?", "en") == "Note: 20 000 people?"
    assert typeset('قال "نعم" : 20 000', "ar") == 'قال "نعم" : 20 000'


def test_theme_strings_contract_the_article_of_the_name_and_leave_entities_alone():
    assert phrase("inscrite à Le Quotidien ; Se désabonner de Le Quotidien ?", "fr") == \
        f"inscrite au Quotidien{NNBSP}; Se désabonner du Quotidien{NNBSP}?"
    assert phrase("aux lecteurs de Les Échos &amp; &#39;x&#39; Cie : &lt;b&gt;", "fr") == \
        f"aux lecteurs des Échos &amp; &#39;x&#39; Cie{NBSP}: &lt;b&gt;"
    assert phrase("subscribed to Le Quotidien: yes", "en") == "subscribed to Le Quotidien: yes"
    env = i18n.environment(None, "fr")
    footer = env.from_string('{{ _("You receive this email because you subscribed to %(name)s.", name=n) }}')
    assert footer.render(n="Le Quotidien") == "Vous recevez cet e-mail parce que votre adresse est inscrite au Quotidien."
    assert footer.render(n="L’Économiste").endswith("inscrite à L’Économiste.")


@pytest.fixture(scope="module")
def french():
    settings = load(EXAMPLES / "digest.toml")
    made = prepare(settings, DAY)
    return settings, made.edition, Renderer(settings).render(made.edition, Variant("fr"))


# A mark French keeps with the word before it, after an ordinary space (or none where one is due).
_LOOSE = re.compile(r"(?:\w |\w)[:;!?%»]|« | %|\d \d{3}\b|[a-zà-ÿ]'[a-zà-ÿ]")


def _text_nodes(root):
    skip = {"style", "title", "script"}
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag not in skip:
            for text in (el.text, el.tail):
                if text and text.strip():
                    yield text


def test_every_text_of_the_french_email_and_twin_is_set_and_no_link_is_touched(french):
    _, _, rendered = french
    root = parse(rendered.html)
    loose = [t for t in _text_nodes(root.find("body")) if _LOOSE.search(re.sub(r"\d\d:\d\d", "", t))]
    assert loose == [], loose[:5]
    twin = "\n".join(line for line in rendered.text.splitlines() if "https://" not in line)
    assert not _LOOSE.search(re.sub(r"\d\d:\d\d", "", twin)), _LOOSE.search(twin)
    assert f"Dessalement{NBSP}: à Casablanca" in rendered.text and "l’usine" in rendered.text
    for el in root.iter():
        for name in ("href", "src"):
            value = el.get(name) if isinstance(el.tag, str) else None
            assert not value or (NBSP not in value and NNBSP not in value and "’" not in value), value
    assert "inscrite au Quotidien" in root.text_content() and "à Le Quotidien" not in root.text_content()
    assert f"Dans cette édition{NBSP}: Politique" in rendered.text


def test_content_takes_the_typography_of_its_own_language():
    settings = load(EXAMPLES / "digest.toml")
    french = item("Sanctions : l'ONU réagit", url="https://news.example.ma/fr", lang="fr")
    english = item('Markets rally: "it\'s a relief"', url="https://news.example.ma/en", hour=13, lang="en")
    edition = rank([french, english], settings, DAY, TZ_NAME)
    for locale in ("fr", "en", "ar"):
        text = Renderer(settings).render(edition, Variant(locale)).text
        assert f"Sanctions{NBSP}: l’ONU réagit" in text
        assert "Markets rally: “it’s a relief”" in text


def test_the_web_page_is_set_too(french):
    settings, edition, _ = french
    page = edition_page(settings, edition)
    assert f"Dessalement{NBSP}: à Casablanca, l’usine" in page
    assert "https://lequotidien.example.ma" in page and f"https:{NBSP}" not in page
