"""DKIM signing (dkimpy): verified against the public key, covering both List-Unsubscribe headers."""
from __future__ import annotations

import base64
import re
from dataclasses import replace

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.core.config import Dkim

from support.newsroom import Newsroom


@pytest.fixture(scope="module")
def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public)


def test_signed_messages_verify_and_cover_list_unsubscribe(tmp_path, keypair, smtp_server):
    private, public = keypair
    room = Newsroom(tmp_path, subscribers=3)
    room.with_smtp(smtp_server.port)
    room.settings = replace(room.settings, dkim=Dkim("lequotidien.example.ma", "digest2026", private))
    report = room.sender().run()
    assert report.outcomes["sent"] == 3

    def dns(name, timeout=5):
        assert name == b"digest2026._domainkey.lequotidien.example.ma."
        return b"v=DKIM1; k=rsa; p=" + public

    for received in smtp_server.handler.messages:
        data = received.data
        assert data.startswith(b"DKIM-Signature:")
        assert dkim.verify(data, dnsfunc=dns)
        signature = data.split(b"\r\n\r\n", 1)[0].decode()
        signed = re.search(r"h=([^;]+);", re.sub(r"\s+", "", signature)).group(1).lower().split(":")
        assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed and "from" in signed
        # Tampering with the unsubscribe header breaks the signature.
        tampered = re.sub(rb"unsubscribe/[A-Za-z0-9_-]+>", b"unsubscribe/forged>", data, count=1)
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_config_needs_a_key(tmp_path):
    from digest.core.config import parse
    from digest.core.errors import ConfigError

    with pytest.raises(ConfigError, match="dkim"):
        parse({"dkim": {"domain": "lequotidien.example.ma", "selector": "digest2026"}})
    key = tmp_path / "dkim.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n")
    settings = parse({"dkim": {"domain": "lequotidien.example.ma", "selector": "s", "key_file": "dkim.pem"}}, folder=tmp_path)
    assert settings.dkim.key.startswith(b"-----BEGIN") and b"BEGIN" not in repr(settings.dkim).encode()
