"""The sender reads a one-line SMTP reply itself (transports/smtp.py, WireProtocol._one_reply), and
any other through aiosmtplib: both give what aiosmtplib alone gives, buffer left as it leaves it."""
from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from aiosmtplib.protocol import MAX_LINE_LENGTH, SMTPProtocol

from digest.delivery.transports.smtp_wire import WireProtocol

BUFFERS = [
    b"250 2.0.0 Ok: queued as 4XyZ\r\n",
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",  # pipelined: three at once
    b"250-smtp.example.ma\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n",  # several lines
    b"550 5.1.1 <x@example.ma>: Recipient address rejected: User unknown in local recipient table\r\n",
    b"250 \r\n",  # no text
    b"250  2.0.0 spaced out \t \r\n",  # blanks around the text
    b"250\r\n",  # no space: not the one-line form read here
    b"421 4.3.2 Service shutting down\n",  # a bare LF
    b"250 message accept\xe9\r\n",  # not UTF-8
    b"250 2.0.0 Ok",  # not whole yet
    b"",
    b"2x0 what\r\n",  # malformed
    b"250 " + b"x" * (MAX_LINE_LENGTH + 10) + b"\r\n",  # too long
]


def _read(protocol: SMTPProtocol, data: bytes, read) -> tuple[object, bytes]:
    protocol._buffer = bytearray(data)
    try:
        got: object = read(protocol)
    except aiosmtplib.SMTPResponseException as exc:
        got = ("raised", exc.code, exc.message)
    return got, bytes(protocol._buffer)


@pytest.mark.parametrize("data", BUFFERS)
def test_a_reply_is_read_as_aiosmtplib_reads_it(data):
    loop = asyncio.new_event_loop()
    try:
        ours, theirs = WireProtocol(loop=loop), SMTPProtocol(loop=loop)
        for _ in range(3):  # the replies one after the other, as an exchange takes them
            mine, left = _read(ours, data, WireProtocol._one_reply)
            reference, reference_left = _read(theirs, data, SMTPProtocol._read_response_from_buffer)
            assert (mine, left) == (reference, reference_left)
            if mine is None or isinstance(mine, tuple) and mine[0] == "raised":
                break
            data = left
    finally:
        loop.close()
