"""A source kind added later, by another package, through the `digest.sources` entry-point group:
declared once, it is named in digest.toml and guessed from its files like digest's own kinds."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from digest.pipeline.sources import feed, markdown, pagedump, registry

from support.cli import digest

PLUGIN = '''
"""A newsroom's wire service: "title @ HHMM" lines under a "#wire" header."""
from datetime import datetime, time

from digest.core.model import Item
from digest.pipeline.sources import SourceKind


def read(data, context):
    items = []
    for line in data.decode("utf-8").splitlines()[1:]:
        title, _, hour = line.rpartition(" @ ")
        when = datetime.combine(context.day, time(int(hour[:2]), int(hour[2:])), context.tz)
        items.append(Item(kind="brief", title=title, published=when, source=context.spec.name))
    return items


KIND = SourceKind("wire", read, extensions=(".wire",), sniff=lambda head: head.startswith(b"#wire"))
'''


def install_plugin(folder: Path) -> dict[str, str]:
    """A real distribution on the path: a module and its dist-info with an entry point."""
    folder.mkdir()
    (folder / "wire_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = folder / "wire_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wire-plugin\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[digest.sources]\nwire = wire_plugin:KIND\n", encoding="utf-8")
    return {"PYTHONPATH": str(folder)}  # after the checkout's (support.cli)


def gather(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return digest("gather", *args, "--date", "2026-11-29", "--timezone", "Africa/Casablanca", "--format", "json",
                  env=env)


def test_a_plugged_kind_is_guessed_from_its_extension_and_its_first_bytes(tmp_path):
    env = install_plugin(tmp_path / "site")
    named = tmp_path / "depeches.wire"
    named.write_text("#wire v1\nLe conseil de gouvernement se réunit jeudi @ 0815\n", encoding="utf-8")
    unnamed = tmp_path / "latest"
    unnamed.write_text("#wire v1\nLa Bourse de Casablanca ouvre en hausse @ 0930\n", encoding="utf-8")
    result = gather(env, "--source", str(named), "--source", str(unnamed))
    assert result.returncode == 0, result.stderr
    titles = {item["title"]: item["source"] for item in json.loads(result.stdout)["items"]}
    assert titles == {"Le conseil de gouvernement se réunit jeudi": str(named),
                      "La Bourse de Casablanca ouvre en hausse": str(unnamed)}


def test_a_plugged_kind_may_be_named_in_digest_toml(tmp_path):
    env = install_plugin(tmp_path / "site")
    wire = tmp_path / "fil.txt"
    wire.write_text("header\nUne dépêche du fil @ 1000\n", encoding="utf-8")
    config = tmp_path / "digest.toml"
    config.write_text(f'[[sources]]\nname = "fil"\npath = "{wire}"\nkind = "wire"\n', encoding="utf-8")
    result = gather(env, "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert [item["title"] for item in json.loads(result.stdout)["items"]] == ["Une dépêche du fil"]
    unknown = tmp_path / "other.toml"
    unknown.write_text(f'[[sources]]\nname = "fil"\npath = "{wire}"\nkind = "telex"\n', encoding="utf-8")
    refused = gather(env, "-c", str(unknown))
    assert refused.returncode == 2 and "sources[fil].kind 'telex' is unknown" in refused.stderr
    assert "wire" in refused.stderr  # the plugged kind is among those offered


def test_digest_s_own_kinds_declare_what_they_read():
    kinds = registry()
    assert kinds["markdown"] is markdown.KIND and ".md" in markdown.KIND.extensions
    assert kinds["feed"] is feed.KIND and "xml" in feed.KIND.content_types
    assert kinds["pagedump"] is pagedump.KIND and pagedump.KIND.fallback(b"anything")
