"""digest.toml: typed settings, and errors that name the file and the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from digest.core.config import load, parse
from digest.core.errors import ConfigError

from support.paths import EXAMPLES


def test_the_example_config_loads_with_rubrics_sources_and_resolved_paths():
    settings = load(EXAMPLES / "digest.toml")
    assert settings.newsletter.timezone == "Africa/Casablanca" and settings.newsletter.locale == "fr"
    assert [r.key for r in settings.rubrics][:3] == ["politique", "economie", "international"]
    assert settings.default_rubric == "actualite"
    assert len(settings.sources) == 5
    for source in settings.sources:
        assert Path(source.location).is_file(), source.location


def test_every_key_of_the_example_is_commented():
    """rss2email style: a comment right above each setting; array tables explain their keys once."""
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    table = ""
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped
            continue
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key = stripped.split("=", 1)[0].strip()
        if table.startswith("[["):
            # [[rubrics]] and [[sources]] keys are explained in the comment block before the first one.
            first = text.index(table)
            assert f"#   {key}" in text[:first] or key in ("name", "path"), f"{table} {key}"
        else:
            assert lines[number - 1].lstrip().startswith("#"), f"{table} {key} has no comment above it"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"newsletter": {"timezone": "Mars/Olympus"}}, "newsletter.timezone"),
        ({"newsletter": {"locale": "xx"}}, "newsletter.locale"),
        ({"newsletter": {"base_url": "http://example.com"}}, "newsletter.base_url"),
        ({"newsletter": {"nmae": "x"}}, "newsletter.nmae"),
        ({"ranking": {"half_life_hours": -1}}, "ranking.half_life_hours"),
        ({"ranking": {"leads": "one"}}, "ranking.leads"),
        ({"rubrics": [{"key": "eco"}]}, "rubrics[eco].label"),
        ({"rubrics": [{"key": "eco", "label": "Éco", "color": "green"}]}, "rubrics[eco].color"),
        ({"rubrics": [{"key": "Eco!", "label": "Éco"}]}, "rubrics[0].key"),
        ({"rubrics": [{"key": "a", "label": "A"}, {"key": "a", "label": "B"}]}, "used twice"),
        ({"sources": [{"name": "x"}]}, "sources[x]"),
        ({"sources": [{"name": "x", "path": "a.txt", "kind": "pdf"}]}, "sources[x].kind"),
        ({"sources": [{"name": "x", "path": "a.txt", "rubric": "nope"}]}, "sources[x].rubric"),
        # Values that go into mail headers: a line break there would forge a header.
        ({"newsletter": {"unsubscribe_mailto": "u@x.ma>\r\nBcc: v@example.com\r\nX-A: <y"}}, "newsletter.unsubscribe_mailto"),
        ({"newsletter": {"base_url": "https://x.ma/d\r\nX-Evil: 1"}}, "newsletter.base_url"),
        ({"newsletter": {"base_url": "https://x.ma/d?next=https://evil.example"}}, "newsletter.base_url"),
        ({"newsletter": {"list_id": "quotidien <x>"}}, "newsletter.list_id"),
        ({"newsletter": {"reply_to": "a@x.ma, b@x.ma"}}, "newsletter.reply_to"),
        ({"delivery": {"local_time": "7:00"}}, "delivery.local_time"),  # "07:00", as the schedule reads it
        ({"delivery": {"local_time": "24:00"}}, "delivery.local_time"),
    ],
)
def test_errors_name_the_file_and_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        parse(raw, file="conf/digest.toml")
    assert "conf/digest.toml" in str(info.value) and message in str(info.value)


def test_a_missing_or_broken_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml")
    broken = tmp_path / "digest.toml"
    broken.write_text("[newsletter\nname = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(broken)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"newsleter": {"name": "x"}}, "unknown table [newsleter] (did you mean newsletter?)"),
        ({"sourcess": [{"name": "a", "path": "a.txt"}]}, "unknown table [[sourcess]] (did you mean sources"),
        ({"fetch_timout_seconds": 3}, "unknown key fetch_timout_seconds (did you mean fetch_timeout_seconds?)"),
        ({"smtp": {"host": "127.0.0.1", "tls": "none", "pasword_file": "p"}},
         "unknown key smtp.pasword_file (did you mean password_file"),
    ],
)
def test_an_unknown_table_or_key_is_named_as_such_with_the_closest_names(raw, expected):
    with pytest.raises(ConfigError) as info:
        parse(raw, file="conf/digest.toml")
    assert expected in str(info.value)
    assert "(top level)" not in str(info.value)


def test_every_unknown_key_of_a_table_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        parse({"newsletter": {"nmae": "x", "sendr": "y", "zzz": 1}}, file="digest.toml")
    message = str(info.value)
    assert "newsletter.nmae (did you mean name?)" in message
    assert "newsletter.sendr (did you mean sender?)" in message
    assert "newsletter.zzz" in message and "known here: " in message  # no close name: the list helps


def test_a_renamed_key_keeps_working_with_a_notice_naming_the_new_one():
    settings = parse({"fetch_timeout": 3}, file="conf/digest.toml")
    assert settings.fetch_timeout_seconds == 3.0
    assert settings.notices == ("conf/digest.toml: fetch_timeout is now called fetch_timeout_seconds; "
                                "the old name still works, rename it when you can",)
    assert parse({"fetch_timeout_seconds": 4}).notices == ()
    with pytest.raises(ConfigError, match="fetch_timeout and fetch_timeout_seconds are the same setting"):
        parse({"fetch_timeout": 3, "fetch_timeout_seconds": 4})


def test_the_command_line_says_once_which_name_to_use(tmp_path):
    from support.cli import digest
    from support.paths import SEED

    config = tmp_path / "digest.toml"
    config.write_text("fetch_timeout = 5\n", encoding="utf-8")
    result = digest("gather", "-c", str(config), "--source", str(SEED), "--date", "2026-11-29")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("digest: warning:")]
    assert warnings == [f"digest: warning: {config}: fetch_timeout is now called fetch_timeout_seconds; "
                        "the old name still works, rename it when you can"]
