"""`digest subscribers …` through Click's runner and as a real process: output, exit codes, no tracebacks."""
from __future__ import annotations

import json
import shutil
import subprocess

import click
import pytest
from click.testing import CliRunner

from digest.cli.subscribers import subscribers
from subscribers import Store

from support.cli import python
from support.paths import EXAMPLES

CONFIG = str(EXAMPLES / "digest.toml")
EXAMPLE = str(EXAMPLES / "subscribers.csv")


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "digest.db")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """run(*args, input=None): the group run in an empty folder with no DIGEST_* variables."""
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        return runner.invoke(subscribers, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


def _one_error_line(result, exit_code: int, fragment: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digest: error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_add_then_list_and_count(run, db):
    result = run("add", "Salma@Example.MA", "--name", "Salma Alaoui", "--locale", "ar", "--timezone", "Africa/Casablanca",
                 "--rubric", "economie", "--rubric", "sport", "-c", CONFIG, "--database", db)
    assert result.exit_code == 0, result.output
    assert result.stdout == "added salma@example.ma (id 1, ar, Africa/Casablanca, rubrics: economie;sport, hour: (asap), rhythm: daily)\n"
    listed = run("list", "--database", db)
    assert "salma@example.ma" in listed.stdout and "economie;sport" in listed.stdout and "Salma Alaoui" in listed.stdout
    assert listed.stderr == "1 subscribers\n"
    assert run("count", "--database", db).stdout.split() == ["active", "1", "unsubscribed", "0", "bounced", "0", "total", "1"]


def test_add_defaults_to_the_newsletter_locale_and_time_zone(run, db):
    result = run("add", "omar@example.ma", "-c", CONFIG, "--database", db)
    assert "(id 1, fr, Africa/Casablanca, rubrics: (all), hour: (asap), rhythm: daily)" in result.stdout  # no [delivery] local_time


def test_add_with_the_reader_s_own_hour_and_list_shows_each_reader_s(run, db, tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text((EXAMPLES / "digest.toml").read_text(encoding="utf-8").replace(
        "[delivery]\n", '[delivery]\nlocal_time = "07:00"\n'), encoding="utf-8")
    added = run("add", "omar@example.ma", "--timezone", "Asia/Tokyo", "--hour", "6:30", "-c", str(config), "--database", db)
    assert added.stdout == "added omar@example.ma (id 1, fr, Asia/Tokyo, rubrics: (all), hour: 06:30, rhythm: daily)\n"
    assert "hour: (07:00)" in run("add", "salma@example.ma", "-c", str(config), "--database", db).stdout  # the newsroom's
    assert "hour: asap" in run("add", "nadia@example.com", "--hour", "ASAP", "-c", str(config), "--database", db).stdout
    table = run("list", "-c", str(config), "--database", db).stdout.splitlines()
    assert table[0].split()[:6] == ["id", "email", "status", "locale", "timezone", "hour"]
    assert [line.split()[5] for line in table[1:]] == ["06:30", "(07:00)", "asap"]
    records = json.loads(run("list", "--format", "json", "--database", db).stdout)
    assert [r["delivery_time"] for r in records] == ["06:30", None, "asap"]
    assert [line.split(",")[7] for line in run("export", "--database", db).stdout.splitlines()] == [
        "delivery_time", "06:30", "", "asap"]
    other = str(tmp_path / "other.db")
    _one_error_line(run("add", "karim@example.ma", "--hour", "7h", "--database", other), 2, "invalid delivery time '7h'")
    assert not (tmp_path / "other.db").exists()  # refused before a database is made for nothing


@pytest.mark.parametrize("args, fragment", [
    (["add", "not-an-address"], "invalid address 'not-an-address'"),
    (["add", "omar@example.ma\r\nBcc: all@example.com"], "line break"),
    (["add", "omar@example.ma", "--rubric", "meteo", "-c", CONFIG], "unknown rubric 'meteo'"),
    (["add", "omar@example.ma", "--timezone", "Casablanca"], "unknown time zone 'Casablanca'"),
    (["remove", "nobody@example.ma", "--yes"], "nobody@example.ma is not a subscriber"),
    (["unsubscribe", "nobody@example.ma"], "nobody@example.ma is not a subscriber"),
    (["import", "missing.csv"], "missing.csv: cannot read it"),
    (["list", "-c", "missing.toml"], "missing.toml: no such file"),
])
def test_user_errors_are_one_line_and_exit_2(run, db, args, fragment):
    Store.open(db).engine.dispose()  # an empty list: the commands that read it find it
    _one_error_line(run(*args, "--database", db), 2, fragment)


@pytest.mark.parametrize("command", [["list"], ["count"], ["export"], ["remove", "a@example.ma", "--yes"],
                                     ["unsubscribe", "a@example.ma"]])
def test_reading_a_list_that_does_not_exist_refuses_instead_of_making_one_up(run, tmp_path, command):
    """No digest.toml, no -c, no --database: nothing is created in the current folder."""
    result = run(*command)
    _one_error_line(result, 2, "no digest.toml here and no -c")
    assert "digest subscribers import" in result.stderr
    assert not (tmp_path / "digest.db").exists() and not (tmp_path / "digest.key").exists()
    # A database named on purpose that is not there: the same refusal, naming it.
    named = run(*command, "--database", str(tmp_path / "elsewhere.db"))
    _one_error_line(named, 2, f"cannot open the database {tmp_path / 'elsewhere.db'}: there is no such file")
    assert not (tmp_path / "elsewhere.db").exists()


def test_adding_without_a_config_says_which_database_it_uses(run, tmp_path):
    result = run("add", "salma@example.ma")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"digest: note: no digest.toml here and no -c: built-in defaults, subscribers in {tmp_path / 'digest.db'}\n"
    assert run("count").stdout.split()[-2:] == ["total", "1"]


def test_adding_twice_is_an_error(run, db):
    run("add", "omar@example.ma", "--database", db)
    _one_error_line(run("add", "omar@EXAMPLE.ma", "--database", db), 2, "omar@example.ma is a subscriber already")


def test_import_reports_and_is_idempotent(run, db):
    first = run("import", EXAMPLE, "-c", CONFIG, "--database", db)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"imported {EXAMPLE}: 24 created, 0 updated, 0 unchanged, 0 bad rows\n"
    again = run("import", EXAMPLE, "-c", CONFIG, "--database", db)
    assert again.stdout == f"imported {EXAMPLE}: 0 created, 0 updated, 24 unchanged, 0 bad rows\n"
    assert run("count", "--database", db).stdout.split()[-2:] == ["total", "24"]


def test_import_without_the_config_checks_against_the_built_in_rubrics(run, db):
    result = run("import", EXAMPLE, "--database", db)
    assert result.exit_code == 1
    assert "unknown rubric 'economie' (known rubrics: actualite)" in result.stdout


def test_import_with_bad_rows_lists_them_and_exits_1(run, db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,name,rubrics,status\n"
                    "salma@example.ma,Salma,sport,active\n"
                    "not-an-address,X,,\n"
                    "omar@example.ma,Omar,meteo,active\n"
                    "salma@example.ma,Salma bis,,\n", encoding="utf-8")
    run("add", "khadija@example.ma", "--database", db)
    run("unsubscribe", "khadija@example.ma", "--database", db)
    path.write_text(path.read_text() + "khadija@example.ma,Khadija,,active\n", encoding="utf-8")
    result = run("import", str(path), "-c", CONFIG, "--database", db)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"imported {path}: 1 created, 1 updated, 0 unchanged, 3 bad rows"
    assert lines[1].startswith("line 3: invalid address 'not-an-address'")
    assert lines[2].startswith("line 4: unknown rubric 'meteo'")
    assert lines[3] == "line 5: duplicate address salma@example.ma (first on line 2)"
    assert lines[4].startswith("line 6: warning: khadija@example.ma stays unsubscribed")
    assert Store.open(db).get("khadija@example.ma").status == "unsubscribed"


def test_import_of_a_file_that_is_not_utf8(run, db, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("email;name\nhelene@example.com;Hélène\n".encode("cp1252"))
    _one_error_line(run("import", str(path), "--database", db), 2, "not UTF-8")
    assert Store.open(db).count()["active"] == 0


def test_import_from_standard_input(run, db):
    result = run("import", "-", "--database", db, input="email,name\nomar@example.ma,Omar\n")
    assert result.stdout.startswith("imported -: 1 created")


def test_export_to_stdout_and_to_a_file_imports_back_identically(run, db, tmp_path):
    run("import", EXAMPLE, "-c", CONFIG, "--database", db)
    to_stdout = run("export", "--database", db)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout.splitlines()[0] == "email,name,locale,timezone,rubrics,status,created_at,delivery_time,cadence,weekday"
    assert "هشام التازي" in to_stdout.stdout and len(to_stdout.stdout.splitlines()) == 25
    out = tmp_path / "out.csv"
    result = run("export", str(out), "--database", db)
    assert result.stderr == f"exported 24 subscribers to {out}\n"
    assert out.read_text(encoding="utf-8") == to_stdout.stdout
    other = str(tmp_path / "other.db")
    assert run("import", str(out), "-c", CONFIG, "--database", other).exit_code == 0
    assert run("export", "--database", other).stdout == to_stdout.stdout
    assert len(run("export", "--status", "bounced", "--database", db).stdout.splitlines()) == 2


def test_list_formats(run, db):
    run("import", EXAMPLE, "-c", CONFIG, "--database", db)
    records = json.loads(run("list", "--format", "json", "--status", "unsubscribed", "--database", db).stdout)
    assert [r["email"] for r in records] == ["khadija.berrada@example.ma", "thomas.girard@example.com"]
    assert records[0]["name"] == "خديجة برادة" and records[0]["rubrics"] == ["societe"]
    missing = run("list", "--format", "json", "--status", "unsubscribed", "--database", str(db) + "x")
    assert missing.exit_code == 2 and missing.stdout == ""  # no made-up empty list
    as_csv = run("list", "--format", "csv", "--status", "bounced", "--database", db).stdout
    assert as_csv.splitlines()[1].startswith("old.reader@example.org,Pierre-Émile Roux,fr,America/Montreal,,bounced,")


def test_remove_asks_first(run, db):
    run("add", "nadia@example.com", "--database", db)
    kept = run("remove", "nadia@example.com", "--database", db, input="n\n")
    assert kept.exit_code == 0 and "nothing removed" in kept.stdout
    assert Store.open(db).get("nadia@example.com") is not None
    removed = run("remove", "nadia@example.com", "--database", db, input="y\n")
    assert removed.exit_code == 0 and "removed nadia@example.com" in removed.stdout
    run("add", "omar@example.ma", "--database", db)
    assert run("remove", "omar@example.ma", "--yes", "--database", db).stdout == "removed omar@example.ma\n"
    assert Store.open(db).count() == {"active": 0, "unsubscribed": 0, "bounced": 0}


def test_unsubscribe_is_idempotent(run, db):
    run("add", "youssef@example.ma", "--database", db)
    assert run("unsubscribe", "youssef@Example.MA", "--database", db).stdout == "unsubscribed youssef@example.ma\n"
    again = run("unsubscribe", "youssef@example.ma", "--database", db)
    assert again.exit_code == 0 and again.stdout == "youssef@example.ma was already unsubscribed\n"


def test_environment_variables_and_the_local_config(run, tmp_path):
    env = {"DIGEST_DATABASE": str(tmp_path / "from-env.db"), "DIGEST_CONFIG": CONFIG}
    assert run("add", "omar@example.ma", "--rubric", "tech", env=env).exit_code == 0
    assert Store.open(tmp_path / "from-env.db").get("omar@example.ma").rubrics == frozenset({"tech"})
    # No option, no variable: ./digest.toml for the rubrics, ./digest.db for the subscribers.
    shutil.copy(CONFIG, tmp_path / "digest.toml")
    assert run("add", "salma@example.ma", "--rubric", "culture").exit_code == 0
    assert Store.open(tmp_path / "digest.db").get("salma@example.ma").timezone == "Africa/Casablanca"


def test_errors_read_the_same_under_the_digest_command(tmp_path):
    digest = click.Group("digest")
    digest.add_command(subscribers)
    result = CliRunner().invoke(digest, ["subscribers", "add", "bad-address", "--database", str(tmp_path / "d.db")])
    assert result.exit_code == 2
    assert result.stderr.startswith("digest: error: invalid address 'bad-address'")


def _process(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The subscribers group on its own, in a real process started in an empty folder."""
    return python("-c", "from digest.cli.subscribers import subscribers; subscribers()", *args, cwd=tmp_path)


@pytest.mark.parametrize("args, fragment", [
    (["count", "--database", "{tmp}/no/such/folder/digest.db"], "cannot open the database"),
    (["count", "--database", "nosuchdialect://host/db"], "cannot use the database URL"),
    (["add", "salma@@example.ma", "--database", "{tmp}/d.db"], "invalid address 'salma@@example.ma'"),
])
def test_a_real_process_prints_no_traceback(tmp_path, args, fragment):
    done = _process(tmp_path, *(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digest: error: ") and fragment in lines[0]


def test_a_real_process_counts(tmp_path):
    db = str(tmp_path / "d.db")
    assert _process(tmp_path, "import", EXAMPLE, "-c", CONFIG, "--database", db).returncode == 0
    done = _process(tmp_path, "count", "--database", db)
    assert done.returncode == 0 and done.stdout.split()[-2:] == ["total", "24"]
