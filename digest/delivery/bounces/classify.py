"""What a message that came back says: a complaint (an RFC 5965 ARF report), a bounce (an RFC 3464
delivery-status report, or one of the older shapes flufl.bounce, Mailman's detectors, knows), an
auto-reply, or nothing we act on; and for a bounce, whether it is hard or soft.

    hard       the address is gone: 5.1.x (unknown user or domain, moved: 5.1.6), 5.2.1 (disabled)
    soft       the mailbox's state, the sender or the message, not the address: 4.x.x given up on,
               5.2.2 full, 5.2.3 and 5.3.4 too big, 5.7.x policy and blocking, and other 5.x.x
    delayed    a report that delivery is still being tried (Action: delayed): nothing is counted
    complaint  a reader pressed "this is spam" and a feedback loop told us
    auto-reply a vacation message or an out-of-office answer (RFC 3834): ignored

A report is a bounce whatever its Auto-Submitted header says (many MTAs mark their DSNs
auto-replied); only a message that is neither report nor recognised bounce can be an auto-reply.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from digest.delivery.bounces.reading import parse

TEXT_MAX = 64 * 1024  # of each text part looked at for a status and the server's words
DETECT_MAX = 64 * 1024  # of a message flufl.bounce's detectors see
DIAGNOSTIC_MAX = 500
PARTS_MAX = 64  # parts of a message looked at: a report has three or four

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# An SMTP reply as bounces quote it: at the start of a line, or after "said:" and the like.
_REPLY = re.compile(r"(?:^|said:|returned|reply:|error:)\s*'?([45])\d\d[ -]", re.IGNORECASE)
# What servers write for an address that does not exist when they give no 5.1.x (Yahoo's, Exchange's
# and older MTAs' words), and for a mailbox that is full or a message too big.
_GONE = ("user unknown", "unknown user", "no such user", "no such mailbox", "does not exist", "doesn't exist",
         "mailbox unavailable", "invalid recipient", "recipient not found", "unknown recipient",
         "recipnotfound", "no mailbox here", "doesn't have a", "account has been disabled", "account is disabled",
         "no longer available", "recipient address rejected")
_FULL = ("quota", "mailbox full", "mailbox is full", "insufficient storage", "too large", "size limit",
         "exceeds the maximum", "message size")
_AUTO_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|vacation|"
                           r"absence|r[ée]ponse automatique|abwesenheit|auto:)", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    kind: str  # hard, soft, delayed, complaint, auto-reply, or unknown (nothing we act on)
    status: str | None = None  # RFC 3463, e.g. 5.1.1
    diagnostic: str = ""  # the remote server's words; for a complaint, its feedback type
    recipient: str | None = None  # whom the report says it is about (Final-Recipient), when it says

    @property
    def acted_on(self) -> bool:
        return self.kind != "unknown"


def classify(raw: bytes) -> Finding:
    """What the message's bytes (bounded: see reading) say."""
    msg = parse(raw)
    parts = list(_parts(msg))
    complaint = _arf(parts)
    if complaint is not None:
        return complaint
    report = _dsn(msg, parts)
    if report is not None:
        return report
    # The detectors scan every line with many patterns: a notice is at the top, so they see its start.
    recognised = _detected(parse(raw[:DETECT_MAX]), parts)
    if recognised is not None:
        return recognised
    if _auto_reply(msg):
        return Finding("auto-reply")
    return Finding("unknown")


def severity(status: str | None, diagnostic: str, permanent: bool = True) -> str:
    """hard or soft, from the status and, where the status says little, the server's words."""
    words = diagnostic.lower()
    if status is None:
        status = "5.0.0" if permanent else "4.0.0"
    klass, subject, detail = status.split(".")
    if klass == "4":
        return "soft"
    if subject == "1" or (subject, detail) == ("2", "1"):
        return "hard"
    if subject in ("2", "3", "7") or any(w in words for w in _FULL):
        return "soft"
    return "hard" if any(w in words for w in _GONE) else "soft"


# -- the shapes ------------------------------------------------------------------------------------

def _parts(msg: Message) -> Iterator[Message]:
    """The message's parts, depth first, at most PARTS_MAX, never into the message it returns (a
    copy of our own, which says nothing about the bounce)."""
    stack, seen = [msg], 0
    while stack and seen < PARTS_MAX:
        part = stack.pop()
        seen += 1
        yield part
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(p for p in reversed(payload) if isinstance(p, Message))


def _arf(parts: list[Message]) -> Finding | None:
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            fields = _fields(part)
            kind = fields.get("feedback-type", "abuse").strip().lower() or "abuse"
            if kind == "not-spam":
                return Finding("unknown", diagnostic=kind)
            return Finding("complaint", diagnostic=kind[:40], recipient=_address(fields.get("original-rcpt-to")))
    return None


def _dsn(msg: Message, parts: list[Message]) -> Finding | None:
    """The worst per-recipient outcome of a delivery-status report: failed over delayed."""
    is_report = msg.get_content_type() == "multipart/report" and \
        str(msg.get_param("report-type", "")).lower() == "delivery-status"
    blocks = [block for part in parts if part.get_content_type() == "message/delivery-status"
              for block in _blocks(part)]
    if not blocks and not is_report:
        return None
    failed = [b for b in blocks if b.get("action", "").strip().lower() == "failed"]
    delayed = [b for b in blocks if b.get("action", "").strip().lower() == "delayed"]
    if not failed and delayed:
        block = delayed[0]
        return Finding("delayed", _status(block.get("status", "")), _diagnostic(block), _address(block.get("final-recipient")))
    if not failed and blocks:
        return None  # delivered, relayed, expanded: a success report, nothing to do
    if not failed:  # a report cut before its status: what its human-readable part says
        return _from_text(parts, permanent=True)
    block = failed[0]
    status = _status(block.get("status", "")) or _status(_diagnostic(block))
    diagnostic = _diagnostic(block)
    return Finding(severity(status, diagnostic), status, diagnostic, _address(block.get("final-recipient")))


def _detected(msg: Message, parts: list[Message]) -> Finding | None:
    """A bounce in one of the shapes flufl.bounce knows (qmail, Exim, Yahoo, Exchange …), in `msg`, the
    message's first DETECT_MAX bytes."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over a malformed message: no shape it knows, then
        return None
    if not temporary and not permanent:
        return None
    finding = _from_text(parts, permanent=bool(permanent))
    recipient = next(iter(sorted(permanent or temporary))).decode("ascii", "replace")
    return Finding(finding.kind, finding.status, finding.diagnostic, recipient)


def _from_text(parts: list[Message], permanent: bool) -> Finding:
    """A status and the server's words, from the first line of the texts that carries an RFC 3463
    status (else an SMTP reply code); hard or soft from them."""
    fallback: tuple[str, str] | None = None
    for text in _texts(parts):
        for line in text.splitlines():
            found = _STATUS.search(line)
            if found:
                status = found.group(0)
                return Finding(severity(status, line, permanent), status, _clean(line))
            reply = _REPLY.search(line)
            if reply and fallback is None:
                fallback = (f"{reply.group(1)}.0.0", _clean(line))
    if fallback is not None:
        status, line = fallback
        return Finding(severity(status, line, permanent), status, line)
    words = " ".join(_texts(parts))[:TEXT_MAX]
    return Finding(severity(None, words, permanent), None, "")


def _texts(parts: list[Message]) -> Iterator[str]:
    for part in parts:
        payload = part.get_payload(decode=True) if part.get_content_type() == "text/plain" else None
        if isinstance(payload, bytes):
            try:
                yield payload[:TEXT_MAX].decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # a charset nobody knows
                yield payload[:TEXT_MAX].decode("utf-8", "replace")


def _auto_reply(msg: Message) -> bool:
    """RFC 3834's Auto-Submitted, and the headers and subjects older auto-responders use."""
    auto = str(msg.get("auto-submitted", "")).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if msg.get("x-autoreply") or msg.get("x-autorespond") or str(msg.get("precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(str(msg.get("subject", ""))[:200]))


# -- fields ----------------------------------------------------------------------------------------

def _blocks(part: Message) -> list[dict[str, str]]:
    """A delivery-status part's per-recipient blocks (the first, per-message block left out)."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    blocks = [{k.lower(): str(v) for k, v in block.items()} for block in payload if isinstance(block, Message)]
    return [b for b in blocks if "action" in b or "status" in b or "final-recipient" in b]


def _fields(part: Message) -> dict[str, str]:
    """A feedback-report part's fields: parsed as a message's header by the standard library."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        return {k.lower(): str(v) for k, v in inner.items()}
    return {}


def _status(value: str) -> str | None:
    found = _STATUS.search(value)
    return found.group(0) if found else None


def _diagnostic(block: dict[str, str]) -> str:
    value = block.get("diagnostic-code", "")
    return _clean(value.partition(";")[2] or value)  # "smtp; 550 5.1.1 …": the words after the type


def _address(value: str | None) -> str | None:
    """rfc822; user@example.com → user@example.com."""
    if not value:
        return None
    return _clean(value.partition(";")[2] or value).strip("<> ")[:320] or None


def _clean(text: str) -> str:
    """One printable line of at most DIAGNOSTIC_MAX characters: the server's words are untrusted."""
    line = " ".join(text.split())
    return "".join(c if c.isprintable() else "?" for c in line)[:DIAGNOSTIC_MAX]
