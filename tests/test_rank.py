"""Ranking: rubric per item, score, order, leads and caps. Pure functions, tested without I/O."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime

import pytest

from digest.core.config import Rubric, defaults, parse
from digest.pipeline.rank import rank, ranked_items

from support.items import item
from support.paths import DAY, SEED, TZ, TZ_NAME


@pytest.fixture
def settings():
    return parse(
        {
            "ranking": {"half_life_hours": 6, "featured_boost": 2.0, "leads": 1},
            "rubrics": [
                {"key": "politique", "label": "Politique", "weight": 1.5, "keywords": ["ministre", "gouvernement"]},
                {"key": "economie", "label": "Économie", "labels": {"en": "Economy"}, "aliases": ["business"],
                 "keywords": ["bourse", "banque", "investissement"], "max_items": 3},
                {"key": "sport", "label": "Sport", "keywords": ["match", "CAN"]},
                {"key": "divers", "label": "Divers", "default": True},
            ],
        }
    )


def rubric_of(settings, **fields) -> str:
    title = fields.pop("title", "Sans rapport")
    return rank([item(title, **fields)], settings, DAY, TZ_NAME).items[0].rubric


def test_category_from_the_source_wins_matched_without_case_or_accents(settings):
    assert rubric_of(settings, title="Le ministre au match", category="ÉCONOMIE") == "economie"
    assert rubric_of(settings, category="economie") == "economie"
    assert rubric_of(settings, category="Business") == "economie"  # an alias


def test_unknown_category_falls_back_to_keywords_then_default(settings):
    assert rubric_of(settings, title="La Bourse termine en hausse", category="Insolite") == "economie"
    assert rubric_of(settings, title="Un titre sans mot-clé", category="Insolite") == "divers"


def test_keywords_are_whole_words_case_and_accent_insensitive(settings):
    assert rubric_of(settings, title="LA BOURSE de Casablanca") == "economie"
    assert rubric_of(settings, title="Le Gouvernement adopte un texte") == "politique"
    assert rubric_of(settings, title="Boursier : un métier d’avenir") == "divers"  # "bourse" is not in "boursier"
    assert rubric_of(settings, title="Le Canada et le Maroc") == "divers"  # "CAN" is not in "Canada"
    assert rubric_of(settings, title="Qualifications pour la CAN") == "sport"


def test_title_hits_count_double_and_ties_go_to_the_first_rubric(settings):
    assert rubric_of(settings, title="Le ministre parle", summary="La bourse, la banque") == "politique"
    assert rubric_of(settings, title="Le ministre au match") == "politique"  # a tie: listed first wins


def test_featured_article_is_the_lead_and_leaves_its_section(settings):
    items = [
        item("Brève la plus fraîche", 22),
        item("Le grand article", 9, kind="article", featured=True, category="economie"),
        item("Un article ordinaire", 21, kind="article"),
    ]
    edition = rank(items, settings, DAY, TZ_NAME)
    assert [r.item.title for r in edition.leads] == ["Le grand article"]
    assert all(r.item.title != "Le grand article" for s in edition.sections for r in s.items)


def test_fresher_items_score_higher_halving_every_half_life(settings):
    edition = rank([item("Récent", 18), item("Six heures avant", 12)], settings, DAY, TZ_NAME)
    scores = {r.item.title: r.score for r in edition.items}
    assert scores["Récent"] == pytest.approx(1.0)
    assert scores["Six heures avant"] == pytest.approx(0.5)


def test_editorial_weight_and_pins(settings):
    items = [item("Brève", 12), item("Le ministre", 12), item("Épinglée", 6, pin=1)]
    order = [r.item.title for r in ranked_items(rank(items, settings, DAY, TZ_NAME))]
    assert order == ["Épinglée", "Le ministre", "Brève"]


def test_sections_follow_the_table_order_and_caps_send_the_rest_to_more(settings):
    items = [item(f"Bourse {i}", 8 + i) for i in range(5)] + [item("Le ministre", 7), item("Le match", 23)]
    edition = rank(items, settings, DAY, TZ_NAME)
    assert [s.rubric for s in edition.sections] == ["politique", "economie", "sport"]
    economie = next(s for s in edition.sections if s.rubric == "economie")
    assert [r.item.title for r in economie.items] == ["Bourse 4", "Bourse 3", "Bourse 2"]
    assert [r.item.title for r in edition.more] == ["Bourse 1", "Bourse 0"]


def test_same_input_same_order_whatever_the_input_order(settings):
    items = [item(f"Titre {i % 7}", 6 + (i % 5), category=["economie", "sport", None][i % 3]) for i in range(60)]
    expected = [(r.item.title, r.item.published, r.rubric) for r in ranked_items(rank(items, settings, DAY, TZ_NAME))]
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        got = [(r.item.title, r.item.published, r.rubric) for r in ranked_items(rank(shuffled, settings, DAY, TZ_NAME))]
        assert got == expected


def test_ties_are_broken_by_time_then_title(settings):
    at = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
    items = [item("B", published=at), item("A", published=at), item("C", 13)]
    assert [r.item.title for r in ranked_items(rank(items, settings, DAY, TZ_NAME))] == ["C", "A", "B"]


def test_without_config_everything_goes_to_the_one_default_rubric():
    settings = defaults()
    edition = rank([item("Bourse"), item("Match", 13)], settings, DAY, TZ_NAME)
    assert [s.rubric for s in edition.sections] == ["actualite"]


def test_example_config_spreads_the_seed_over_at_least_4_rubrics(example_settings):
    from digest.core.config import SourceSpec
    from digest.pipeline.gather import gather

    gathered = gather([SourceSpec("seed", str(SEED))], DAY, TZ)
    edition = rank(gathered.items, example_settings, DAY, TZ_NAME)
    rubrics = {r.item.title: r.rubric for r in edition.items}
    assert len(set(rubrics.values())) >= 4
    assert rubrics["Légère progression à la Bourse de Casablanca malgré des indices mitigés"] == "economie"
    assert rubrics["Lavrov et Rubio discutent d'une nouvelle approche pour l'Ukraine"] == "international"
    assert rubrics["Tanger : la hausse non officielle des tarifs des taxis met le feu aux poudres"] == "societe"
    assert rubrics["Bourita et Blinken renforcent les liens Maroco-Américains à Washington"] == "politique"
    assert edition.leads[0].item.title == "Bourita et Blinken renforcent les liens Maroco-Américains à Washington"


def test_rubric_label_per_locale():
    rubric = Rubric("economie", "Économie", labels={"en": "Economy"})
    assert rubric.label_for("en") == "Economy" and rubric.label_for("ar") == "Économie"
    assert replace(rubric, labels={}).label_for("en") == "Économie"
