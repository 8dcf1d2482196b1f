"""Every fixed string of the email, the text twin and the preview comes from the fr, en and ar catalogs."""
from __future__ import annotations

import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from digest.pipeline.i18n import builtin_templates, translations

from support.paths import ROOT

TEMPLATES = builtin_templates()
EMAIL_AND_PREVIEW = sorted([*TEMPLATES.glob("email/*.j2"), *TEMPLATES.glob("preview/*.j2"), *TEMPLATES.glob("web/*.j2")])


def msgids() -> set[str | tuple[str, str]]:
    from babel.messages.extract import extract_python

    found: set = set()
    # The checks' names and messages show in the preview: they come from the catalogs too.
    with (ROOT / "digest" / "web" / "checks.py").open("rb") as handle:
        for _line, _function, message, _comments in extract_python(handle, ("_", "gettext", "ngettext"), [], {}):
            found.add(message if isinstance(message, str) else tuple(m for m in message if m))
    for path in EMAIL_AND_PREVIEW:
        with path.open("rb") as handle:
            for _line, _function, message, _comments in babel_extract(handle, ("_", "gettext", "ngettext"), [], {
                    "extensions": "jinja2.ext.i18n", "trim_blocks": "yes", "lstrip_blocks": "yes"}):
                found.add(message if isinstance(message, str) else tuple(m for m in message if m))
    return found


def catalog(locale: str):
    with (TEMPLATES / "locale" / locale / "LC_MESSAGES" / "digest.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def test_the_templates_use_translated_strings():
    assert {"Read more", "Unsubscribe", "Top story", "Preview", "Plain text"} <= {m for m in msgids() if isinstance(m, str)}


@pytest.mark.parametrize("locale", ["fr", "en", "ar"])
def test_every_string_has_a_translation(locale):
    entries = catalog(locale)
    missing = []
    for message in msgids():
        key = message if isinstance(message, str) else message[0]
        entry = entries.get(key)
        if entry is None or not (entry.string if isinstance(entry.string, str) else all(entry.string)):
            missing.append(key)
    assert missing == [], f"{locale}: no translation for {missing}"


def test_plural_forms_follow_each_language():
    assert translations("fr").ngettext("%(num)d story today", "%(num)d stories today", 1) == "%(num)d article aujourd’hui"
    assert translations("ar").ngettext("%(num)d story today", "%(num)d stories today", 2) == "خبران اليوم"
    assert translations("en").gettext("Read more") == "Read more"
