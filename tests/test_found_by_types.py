"""Edges the type checker found: each a value that may be None, or of another type, where the code
took it for granted. Real stores, real servers, as everywhere else."""
from __future__ import annotations

import re
import warnings

import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests a fork of httpx for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from digest.web.serve import create_app

from support.newsroom import Newsroom

BASE = "https://lequotidien.example.ma"


@pytest.fixture
def room(tmp_path):
    return Newsroom(tmp_path, subscribers=2)


def test_a_reader_removed_while_their_preferences_are_saved_gets_the_invalid_link_page(room):
    """The page after a save reads the subscriber again; if `digest subscribers remove` took them
    meanwhile, that is the invalid-link page (404), not a server error."""
    subscriber = room.store.get(room.emails[0])
    path = f"/digest/preferences/{room.tokens.make(subscriber.id)}"
    # The removal, made certain: the database itself deletes the row as the save updates it.
    with room.store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER removed AFTER UPDATE ON subscribers "
                             "BEGIN DELETE FROM subscribers WHERE id = NEW.id; END")
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as client:
        page = client.get(path)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        saved = client.post(path, data={"csrf": csrf, "locale": "en", "action": "save"})
    assert saved.status_code == 404
    assert "Ce lien n’est pas valide" in saved.text  # the newsroom's language: the reader is gone
    assert room.store.get(room.emails[0]) is None
