"""Signed unsubscribe/preferences tokens and their keys: fixed shape, forgeries refused, rotation, key files."""
from __future__ import annotations

import re
import stat

import pytest

from digest.core.errors import ConfigError
from subscribers.tokens import (
    MAX_SUBSCRIBER_ID,
    MAX_VERSION,
    TOKEN_LENGTH,
    Tokens,
    load_keys,
)

LIST_ID = "quotidien.lequotidien.example.ma"
KEY_1 = b"k1-0123456789abcdef-premiere-cle"
KEY_2 = b"k2-fedcba9876543210-seconde-cle!"
SHAPE = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture
def tokens():
    return Tokens({1: KEY_1}, 1, LIST_ID)


def test_round_trip(tokens):
    for purpose in ("unsubscribe", "preferences"):
        assert tokens.verify(tokens.make(42, purpose), purpose) == 42
    assert tokens.verify(tokens.make(42)) == 42


def test_every_token_has_the_same_length_and_alphabet():
    assert TOKEN_LENGTH == 44
    for version in (1, 2, 15, 16, MAX_VERSION):
        signer = Tokens({version: KEY_1}, version, LIST_ID)
        for subscriber_id in (1, 2, 255, 10**6, 2**32, MAX_SUBSCRIBER_ID):
            for purpose in ("unsubscribe", "preferences"):
                token = signer.make(subscriber_id, purpose)
                assert len(token) == TOKEN_LENGTH and SHAPE.fullmatch(token), token
                assert signer.verify(token, purpose) == subscriber_id
    assert MAX_SUBSCRIBER_ID == 2**40 - 1


def test_layout_is_version_id_mac(tokens):
    token = tokens.make(0x2A)
    assert token[:2] == "01" and token[2:12] == "000000002a"


def test_the_address_is_not_in_the_token(tokens):
    assert "@" not in tokens.make(7)


def test_ids_out_of_range_are_refused(tokens):
    for bad in (0, -1, 2**40):
        with pytest.raises(ValueError):
            tokens.make(bad)


def _flip(char: str) -> str:
    return "B" if char != "B" else "C"


def test_forged_truncated_and_tampered_tokens_are_refused(tokens):
    good = tokens.make(1234)
    forged = Tokens({1: b"someone-elses-secret-key-0000000"}, 1, LIST_ID).make(1234)
    candidates = [
        forged,
        good[:-1],
        good + "A",
        "",
        "x" * TOKEN_LENGTH,
        good[:2] + "00000004d3" + good[12:],  # another subscriber's id with this one's MAC
        good.upper(),  # the hex part re-spelt
        good[:-1] + _flip(good[-1]),
        good[:20] + _flip(good[20]) + good[21:],
        good[:-1] + "=",
        good[:-2] + "é" + good[-1],
        None,
        1234,
    ]
    for candidate in candidates:
        assert tokens.verify(candidate) is None, candidate


def test_another_list_or_purpose_is_refused(tokens):
    token = tokens.make(99)
    assert Tokens({1: KEY_1}, 1, "autre.example.org").verify(token) is None
    assert tokens.verify(token, "preferences") is None
    assert tokens.verify(tokens.make(99, "preferences")) is None


def test_an_unknown_key_version_is_refused(tokens):
    token = Tokens({1: KEY_1, 2: KEY_2}, 2, LIST_ID).make(5)
    assert token[:2] == "02"
    assert tokens.verify(token) is None
    assert tokens.verify("03" + token[2:]) is None


def test_rotation_keeps_old_links_working(tokens):
    old = tokens.make(77)
    rotated = Tokens({1: KEY_1, 2: KEY_2}, 2, LIST_ID)
    new = rotated.make(77)
    assert new != old and new[:2] == "02"
    assert rotated.verify(old) == 77 and rotated.verify(new) == 77
    assert Tokens({2: KEY_2}, 2, LIST_ID).verify(old) is None  # key 1 retired: its links die


def test_repr_shows_no_key():
    assert "k1-" not in repr(Tokens({1: KEY_1}, 1, LIST_ID))


def test_bad_key_sets_are_refused():
    with pytest.raises(ValueError):
        Tokens({1: KEY_1}, 2, LIST_ID)
    with pytest.raises(ValueError):
        Tokens({}, 1, LIST_ID)
    with pytest.raises(ValueError):
        Tokens({256: KEY_1}, 256, LIST_ID)


# -- keys ---------------------------------------------------------------------------------------

SECRET_A = "a-long-enough-secret-for-version-one"
SECRET_B = "another-long-secret-for-version-three"


def test_load_keys_from_the_environment(tmp_path):
    assert load_keys(None, {"DIGEST_SECRET": SECRET_A, "HOME": "/root"}) == ({1: SECRET_A.encode()}, 1)
    keys, current = load_keys(tmp_path / "secret", {"DIGEST_SECRET": SECRET_A, "DIGEST_SECRET_3": SECRET_B})
    assert keys == {1: SECRET_A.encode(), 3: SECRET_B.encode()} and current == 3
    assert not (tmp_path / "secret").exists()  # the environment wins; no file made


def test_environment_errors_never_show_the_secret():
    for env in ({"DIGEST_SECRET": "Xq7-tiny"}, {"DIGEST_SECRET": SECRET_A, "DIGEST_SECRET_1": SECRET_B},
                {"DIGEST_SECRET_0": SECRET_A}, {"DIGEST_SECRET_999": SECRET_A}):
        with pytest.raises(ConfigError) as caught:
            load_keys(None, env)
        for secret in env.values():
            assert secret not in str(caught.value)
    with pytest.raises(ConfigError, match="DIGEST_SECRET"):
        load_keys(None, {})


def test_load_keys_from_a_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text(f"# keys\n1:{SECRET_A}\n\n3:{SECRET_B}\n")
    assert load_keys(path, {}) == ({1: SECRET_A.encode(), 3: SECRET_B.encode()}, 3)


@pytest.mark.parametrize("content, problem", [
    ("no-colon-here-at-all-000000\n", "line 1: expected VERSION:SECRET"),
    (f"x:{SECRET_A}\n", "line 1: the key version"),
    (f"1:{SECRET_A}\n1:{SECRET_B}\n", "line 2: key version 1 is there twice"),
    ("# only a comment\n", "has no key"),
    ("2:tiny\n", "line 1: the secret is shorter"),
])
def test_a_bad_key_file_is_named_without_its_secret(tmp_path, content, problem):
    path = tmp_path / "secret"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_keys(path, {})
    assert str(path) in str(caught.value)
    assert SECRET_A not in str(caught.value) and "tiny" not in str(caught.value)


def test_first_run_creates_a_private_key_file(tmp_path):
    path = tmp_path / "state" / "digest.secret"
    keys, current = load_keys(path, {})
    assert current == 1 and len(keys[1]) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(path, {}) == (keys, 1)  # the second run reads what the first wrote
    signer = Tokens(keys, current, LIST_ID)
    assert signer.verify(signer.make(3)) == 3
