"""Mail that comes back, in the shapes the field sends it, written here around a message the test
really sent: RFC 3464 reports as Postfix, Exim, Sendmail and Office 365 write them; the older text
shapes of Exchange, Gmail, Yahoo and qmail; RFC 5965 complaints from Yahoo's and Microsoft's feedback
loops; a vacation reply. Each is addressed to the sent message's return path (as a bounce is) or
quotes the sent message (as a complaint does)."""
from __future__ import annotations

from dataclasses import dataclass

BOUNDARY = "=_bounce_4f2a"


@dataclass(frozen=True)
class Sent:
    """A message as the relay took it: its envelope sender (the VERP return path), recipient, bytes."""

    return_path: str
    recipient: str
    data: bytes

    @property
    def headers(self) -> str:
        """The sent message's header block, as a report's text/rfc822-headers part carries it."""
        return self.data.split(b"\r\n\r\n", 1)[0].decode("ascii") + "\r\n"

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _envelope(sent: Sent, sender: str, subject: str, message_id: str) -> str:
    """The header block every bounce here opens with, as the bounce domain's mailbox receives it."""
    return f"""Return-Path: <>
Delivered-To: {sent.return_path}
From: {sender}
To: {sent.return_path}
Subject: {subject}
Date: Mon, 30 Nov 2026 06:12:44 +0000
Message-ID: {message_id}
MIME-Version: 1.0
"""


def _report(sent: Sent, *, sender: str, subject: str, human: str, status: str, original: str,
            extra_headers: str = "", message_id: str = "<dsn.1@mx.example.net>", original_type: str = "message/rfc822",
            human_type: str = "text/plain; charset=us-ascii") -> bytes:
    return _crlf(f"""{_envelope(sent, sender, subject, message_id)}{extra_headers}Content-Type: multipart/report; report-type=delivery-status; boundary="{BOUNDARY}"

This is a MIME-encapsulated message.

--{BOUNDARY}
Content-Description: Notification
Content-Type: {human_type}

{human}

--{BOUNDARY}
Content-Description: Delivery report
Content-Type: message/delivery-status

{status}
--{BOUNDARY}
Content-Description: Undelivered Message
Content-Type: {original_type}

""") + original.encode("utf-8") + _crlf(f"\n--{BOUNDARY}--\n")


def postfix(sent: Sent, status: str = "5.1.1",
            diagnostic: str = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table",
            action: str = "failed", message_id: str = "<20261130061244.3F1A2@mx.example.net>") -> bytes:
    rcpt = sent.recipient
    words = diagnostic.format(rcpt=rcpt)
    human = f"""This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<{rcpt}>: host mail.example.com[203.0.113.25] said: {words} (in reply to
    RCPT TO command)"""
    report = f"""Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 3F1A2C0045
X-Postfix-Sender: rfc822; {sent.return_path}
Arrival-Date: Mon, 30 Nov 2026 06:12:40 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.com
Diagnostic-Code: smtp; {words}
"""
    return _report(sent, sender="MAILER-DAEMON@mx.example.net (Mail Delivery System)",
                   subject="Undelivered Mail Returned to Sender", human=human, status=report,
                   original=sent.text, message_id=message_id,
                   extra_headers="Auto-Submitted: auto-replied\n")


def exim(sent: Sent) -> bytes:
    rcpt = sent.recipient
    human = f"""This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {rcpt}
    host mx1.example.com [198.51.100.7]
    SMTP error from remote mail server after end of data:
    550 5.7.1 Message rejected due to content restrictions"""
    report = f"""Reporting-MTA: dns; relay.example.org

Action: failed
Final-Recipient: rfc822;{rcpt}
Status: 5.7.1
Remote-MTA: dns; mx1.example.com
Diagnostic-Code: smtp; 550 5.7.1 Message rejected due to content restrictions
"""
    return _report(sent, sender="Mail Delivery System <Mailer-Daemon@relay.example.org>",
                   subject="Mail delivery failed: returning message to sender", human=human, status=report,
                   original=sent.headers, original_type="text/rfc822-headers",
                   message_id="<E1vPq2r-0004Xy-Ab@relay.example.org>",
                   extra_headers=f"X-Failed-Recipients: {rcpt}\nAuto-Submitted: auto-replied\n")


def sendmail(sent: Sent) -> bytes:
    rcpt = sent.recipient
    human = f"""The original message was received at Mon, 30 Nov 2026 06:12:40 GMT
from relay.example.org [192.0.2.10]

   ----- The following addresses had permanent fatal errors -----
<{rcpt}>
    (reason: 552 5.2.2 Mailbox full)

   ----- Transcript of session follows -----
... while talking to mail.example.com.:
>>> DATA
<<< 552 5.2.2 <{rcpt}>... Mailbox full
554 5.0.0 Service unavailable"""
    report = f"""Reporting-MTA: dns; mail.example.com
Received-From-MTA: DNS; relay.example.org
Arrival-Date: Mon, 30 Nov 2026 06:12:40 GMT

Final-Recipient: RFC822; {rcpt}
Action: failed
Status: 5.2.2
Remote-MTA: DNS; mail.example.com
Diagnostic-Code: SMTP; 552 5.2.2 <{rcpt}>... Mailbox full
Last-Attempt-Date: Mon, 30 Nov 2026 06:12:44 GMT
"""
    return _report(sent, sender="Mail Delivery Subsystem <MAILER-DAEMON@mail.example.com>",
                   subject="Returned mail: see transcript for details", human=human, status=report,
                   original=sent.text, message_id="<202611300612.5AU6CiQ1012345@mail.example.com>")


def office365(sent: Sent) -> bytes:
    rcpt = sent.recipient
    human = f"""<html><body><p><b><font color="#000000" size="3">Your message to {rcpt} couldn't be
delivered.</font></b></p><p>{rcpt.split("@")[0]} wasn't found at example.com.</p>
<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP
address lookup'</p></body></html>"""
    report = f"""Reporting-MTA: dns;AM9PR01MB1234.eurprd01.prod.outlook.com
Received-From-MTA: dns;relay.example.org
Arrival-Date: Mon, 30 Nov 2026 06:12:40 +0000

Original-Recipient: rfc822;{rcpt}
Final-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
"""
    return _report(sent, sender="Microsoft Outlook <MAILER-DAEMON@AM9PR01MB1234.eurprd01.prod.outlook.com>",
                   subject="Undeliverable: " + "Le Quotidien", human=human, status=report,
                   original=sent.headers, original_type="text/rfc822-headers", human_type="text/html; charset=us-ascii",
                   message_id="<9a1d3c2e-0f1b-4d7a-bb11-0c5e1f2a3b4c@AM9PR01MB1234.eurprd01.prod.outlook.com>",
                   extra_headers="Auto-Submitted: auto-replied\nX-MS-Exchange-Message-Is-Ndr:\n")


def _text_bounce(sent: Sent, sender: str, subject: str, body: str, message_id: str) -> bytes:
    return _crlf(f"""{_envelope(sent, sender, subject, message_id)}Content-Type: text/plain; charset=us-ascii

{body}
""") + sent.data


def exchange(sent: Sent) -> bytes:
    """Exchange 2000's NDR: the text Mailman's Exchange detector knows, no RFC 3463 status at all."""
    rcpt = sent.recipient
    body = f"""Your message

  To:      {rcpt}
  Subject: Le Quotidien
  Sent:    Mon, 30 Nov 2026 06:12:40 +0000

did not reach the following recipient(s):

{rcpt} on Mon, 30 Nov 2026 06:12:44 +0000
    The recipient name is not recognized
\tThe MTS-ID of the original message is: c=us;a= ;p=example;l=MAIL0126113006124BX2R1
    MSEXCH:IMS:Example:HQ:MAIL01 0 (000C05A6) Unknown Recipient
"""
    return _text_bounce(sent, "System Administrator <postmaster@example.com>", "Undeliverable: Le Quotidien",
                        body, "<7F3B2A1C0D4E@MAIL01.example.com>")


def gmail(sent: Sent) -> bytes:
    rcpt = sent.recipient
    body = f"""Delivery to the following recipient failed permanently:

     {rcpt}

Technical details of permanent failure:
The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.
550 5.1.1 https://support.google.com/mail/?p=NoSuchUser a1si123456wrb.42 - gsmtp

----- Original message -----
"""
    return _text_bounce(sent, "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                        "Delivery Status Notification (Failure)", body, "<000000000000a1b2c3d4e5f6@google.com>")


def yahoo(sent: Sent) -> bytes:
    rcpt = sent.recipient
    body = f"""Sorry, we were unable to deliver your message to the following address.

<{rcpt}>:
Remote host said: 554 delivery error: dd This user doesn't have a yahoo.com account ({rcpt}) [0] - mta1010.mail.gq1.yahoo.com

--- Below this line is a copy of the message.
"""
    return _text_bounce(sent, "MAILER-DAEMON@yahoo.com", "Failure Notice", body, "<1796012345.123.yahoo@mta1010>")


def qmail(sent: Sent) -> bytes:
    rcpt = sent.recipient
    body = f"""Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{rcpt}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.
"""
    return _text_bounce(sent, "MAILER-DAEMON@mail.example.net", "failure notice", body, "<20261130061244.4711.qmail@mail.example.net>")


def _arf(sent: Sent, *, sender: str, to: str, subject: str, user_agent: str, message_id: str,
         original: str) -> bytes:
    return _crlf(f"""From: {sender}
To: {to}
Subject: {subject}
Date: Mon, 30 Nov 2026 09:30:00 +0000
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{BOUNDARY}"

--{BOUNDARY}
Content-Type: text/plain; charset="us-ascii"

This is an email abuse report for an email message received from IP 192.0.2.10 on Mon, 30 Nov 2026 06:12:40 +0000.

--{BOUNDARY}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: {user_agent}
Version: 1
Original-Mail-From: <{sent.return_path}>
Arrival-Date: Mon, 30 Nov 2026 06:12:40 +0000
Source-IP: 192.0.2.10
Reported-Domain: lequotidien.example.ma

--{BOUNDARY}
Content-Type: message/rfc822
Content-Disposition: inline

""") + original.encode("utf-8") + _crlf(f"\n--{BOUNDARY}--\n")


def _redacted(sent: Sent, keep_return_path: bool) -> str:
    """The sent message as a feedback loop quotes it: the recipient's address taken out."""
    text = sent.text.replace(sent.recipient, "redacted@redacted")
    return (f"Return-Path: <{sent.return_path}>\r\n" + text) if keep_return_path else text


def yahoo_arf(sent: Sent) -> bytes:
    return _arf(sent, sender="Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>",
                to="fbl@lequotidien.example.ma", subject="FW: Le Quotidien", user_agent="Yahoo!-Mail-Feedback/2.0",
                message_id="<1796015000.77.arf@yahoo.com>", original=_redacted(sent, keep_return_path=True))


def microsoft_arf(sent: Sent) -> bytes:
    """JMRP: the recipient redacted and no return path quoted: only X-Digest-ID says who."""
    return _arf(sent, sender="staff@hotmail.com", to="fbl@lequotidien.example.ma",
                subject="complaint about message from 192.0.2.10", user_agent="Microsoft Junk Mail Reporting Program",
                message_id="<JMRP.1796015100.1@hotmail.com>", original=_redacted(sent, keep_return_path=False))


def vacation(sent: Sent) -> bytes:
    return _crlf(f"""Return-Path: <{sent.recipient}>
Delivered-To: {sent.return_path}
From: Lecteur <{sent.recipient}>
To: {sent.return_path}
Subject: =?utf-8?q?Absence_du_bureau=3A_Le_Quotidien?=
Date: Mon, 30 Nov 2026 06:13:00 +0000
Message-ID: <vacation.1796013000@example.com>
Auto-Submitted: auto-replied
Precedence: bulk
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Bonjour, je suis absent jusqu'au 7 décembre, sans accès à mes courriels.
""")


def truncated(sent: Sent) -> bytes:
    """A Postfix report whose copy of the message stops in the middle, as MTAs cut long ones."""
    whole = postfix(sent, message_id="<20261130061300.7C3D4@mx.example.net>")
    cut = whole.index(b"Content-Type: multipart/alternative", whole.index(b"Undelivered Message")) + 300
    return whole[:cut]
