"""The command line as a user runs it: a real subprocess, exit codes, no tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sysconfig

import pytest

from support.cli import digest, python
from support.mail import parse
from support.paths import EXAMPLES, ROOT, SEED


def test_help_lists_the_commands_and_each_has_its_own_help():
    result = digest("--help")
    assert result.returncode == 0
    assert "gather" in result.stdout and "build" in result.stdout
    for command in ("gather", "build"):
        sub = digest(command, "--help")
        assert sub.returncode == 0 and f"Usage: digest {command}" in sub.stdout
        assert "--source" in sub.stdout and "--date" in sub.stdout and "--timezone" in sub.stdout


@pytest.mark.parametrize("args", [("--help",), ("gather", "--help"), ("build", "--help")])
def test_help_loads_no_pipeline_and_no_database_layer(args):
    """`digest --help` and `digest gather --help` start in a few hundredths of a second (the README's
    figure): what they import is what is checked here, never how long it takes."""
    probe = ("import sys, runpy\n"
             f"sys.argv = ['digest', *{list(args)!r}]\n"
             "try:\n    runpy.run_module('digest', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = ['sqlalchemy', 'premailer', 'mjml', 'feedparser', 'lxml', 'babel', 'email_validator', 'digest.pipeline']\n"
             "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n")
    result = python("-c", probe)
    assert result.returncode == 0 and "Usage: digest" in result.stdout
    assert result.stderr.strip() == "[]"


def test_the_console_script_is_installed():
    # Where this interpreter's environment installs scripts: found whether or not it is activated.
    scripts = sysconfig.get_path("scripts")
    path = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    result = subprocess.run(["digest", "--version"], capture_output=True, text=True,
                            env={**os.environ, "PATH": path}, timeout=120)
    assert result.returncode == 0 and "digest" in result.stdout


def test_gather_json_for_the_seed():
    result = digest("gather", "--source", str(SEED), "--date", "2026-11-29", "--timezone", "Africa/Casablanca", "--format", "json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    briefs = [i for i in items if i["kind"] == "brief"]
    articles = [i for i in items if i["kind"] == "article"]
    assert len(briefs) == 9 and len(articles) == 1
    assert sorted(i["published"] for i in briefs)[-1] == "2026-11-29T20:55:00+01:00"
    assert sorted(i["published"] for i in briefs)[0] == "2026-11-29T17:33:00+01:00"
    for entry in items:
        assert {"kind", "title", "published", "rubric", "score", "source", "url"} <= entry.keys()
        assert entry["url"] is None
    assert len(articles[0]["body"]) == 6


def test_gather_table_is_the_default():
    result = digest("gather", "--source", str(SEED), "--date", "2026-11-29", "--timezone", "Africa/Casablanca")
    assert result.returncode == 0
    assert "20:55" in result.stdout and "Bourita et Blinken" in result.stdout
    assert "10 items" in result.stderr


def test_build_writes_html_text_and_eml_and_reports(tmp_path):
    out = tmp_path / "edition"
    result = digest("build", "-c", str(EXAMPLES / "digest.toml"), "--date", "2026-11-29", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"digest.html", "digest.txt", "digest.eml"}
    assert "Économie" in result.stdout and "bytes of 100,000" in result.stdout
    msg = parse((out / "digest.eml").read_bytes())
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n")
    assert html == (out / "digest.html").read_text(encoding="utf-8")


def test_build_without_config_uses_built_in_defaults(tmp_path):
    result = digest("build", "--source", str(SEED), "--date", "2026-11-29", "--timezone", "Africa/Casablanca",
                    "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "digest.html").read_text(encoding="utf-8")
    assert 'lang="fr"' in html and "Actualité" in html and "dimanche 29 novembre 2026" in html


def test_source_option_replaces_the_configured_sources(tmp_path):
    result = digest("gather", "-c", str(EXAMPLES / "digest.toml"), "--source", str(SEED), "--date", "2026-11-29", "--format", "json")
    items = json.loads(result.stdout)["items"]
    assert len(items) == 10 and {i["source"] for i in items} == {str(SEED)}
    assert {i["rubric"] for i in items} >= {"economie", "international", "societe", "politique"}


def test_environment_variables_stand_in_for_options(tmp_path):
    result = digest("gather", "--source", str(SEED), "--format", "json",
                    env={"DIGEST_DATE": "2026-11-29", "DIGEST_TIMEZONE": "Africa/Casablanca"})
    assert json.loads(result.stdout)["date"] == "2026-11-29"
    assert len(json.loads(result.stdout)["items"]) == 10


def test_a_failing_source_is_named_the_others_still_make_the_edition(tmp_path):
    missing = tmp_path / "absent.xml"
    result = digest("gather", "--source", str(SEED), "--source", str(missing), "--date", "2026-11-29",
                    "--timezone", "Africa/Casablanca", "--format", "json")
    assert result.returncode == 1
    assert len(json.loads(result.stdout)["items"]) == 10
    errors = [line for line in result.stderr.splitlines() if line.startswith("digest: error:")]
    assert len(errors) == 1 and str(missing) in errors[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["gather", "--source", "x.txt", "--date", "29/11/2026"], "--date"),
        (["gather", "--source", "x.txt", "--timezone", "Mars/Olympus"], "time zone"),
        (["gather", "-c", "/nonexistent/digest.toml"], "no such file"),
        (["gather", "--format", "xml"], "xml"),
        (["build", "--date", "2026-11-29"], "no sources"),
        (["publish"], "No such command"),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_clear_line(args, needle, tmp_path):
    result = digest(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr


def test_a_broken_config_file_names_the_key(tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text('[newsletter]\ntimezone = "Nowhere/City"\n', encoding="utf-8")
    result = digest("build", "-c", str(config))
    assert result.returncode == 2
    assert "newsletter.timezone" in result.stderr and str(config) in result.stderr


def test_an_unwritable_out_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = digest("build", "--source", str(SEED), "--date", "2026-11-29", "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert "cannot write the edition" in result.stderr


def test_a_build_whose_every_source_failed_writes_nothing(tmp_path):
    result = digest("build", "--source", str(tmp_path / "absent.xml"), "--date", "2026-11-29",
                    "--out", str(tmp_path / "edition"), cwd=tmp_path)
    assert result.returncode == 2
    assert "the edition has no items (every source failed): nothing is written" in result.stderr
    assert str(tmp_path / "absent.xml") in result.stderr  # the source is still named
    assert not (tmp_path / "edition").exists()


def test_a_build_of_a_day_without_items_writes_nothing(tmp_path):
    feed = ROOT / "tests" / "fixtures" / "feeds" / "rss2.xml"  # dated items, none on that day
    result = digest("build", "--source", str(feed), "--date", "2020-01-01", "--out", str(tmp_path / "edition"),
                    cwd=tmp_path)
    assert result.returncode == 2 and "the day has no items" in result.stderr
    assert not (tmp_path / "edition").exists()


@pytest.mark.parametrize("command", ["send", "serve"])
def test_send_and_serve_without_a_config_refuse_and_create_nothing(tmp_path, command):
    result = digest(command, "--source", str(SEED), cwd=tmp_path) if command == "send" else digest(command, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no digest.toml here and no -c: digest {command} needs one" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no digest.db, no digest.key


@pytest.mark.parametrize("command", ["send", "serve"])
def test_send_and_serve_refuse_a_subscriber_database_that_does_not_exist(tmp_path, command):
    config = tmp_path / "digest.toml"
    config.write_text((EXAMPLES / "digest.toml").read_text(encoding="utf-8").replace('path = "', f'path = "{EXAMPLES}/'),
                      encoding="utf-8")
    dated = ["--date", "2026-11-29"] if command == "send" else []
    result = digest(command, "-c", str(config), *dated, cwd=tmp_path)
    assert result.returncode == 2
    assert f"cannot open the database {tmp_path / 'digest.db'}: there is no such file" in result.stderr
    assert "digest subscribers import" in result.stderr
    assert not (tmp_path / "digest.db").exists() and not (tmp_path / "digest.key").exists()
