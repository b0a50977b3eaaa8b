"""Reading an inbound mail: MIME, charsets, who wrote it, whether a machine did.

Nothing here touches the database; ``read_mail`` turns raw bytes into a ``ParsedMail`` and
never raises, whatever the bytes. The body is split into new and quoted text by ``quotes``;
commands are read later (``grammar``) and only from ``ParsedMail.text``. HTML is converted
with ``inscriptis`` after the quote containers of the common clients are removed with
``lxml``.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr

import lxml.html
from inscriptis import Inscriptis
from inscriptis.model.config import ParserConfig
from lxml import etree
from lyra_bot.adapters.email.quotes import split_body

log = logging.getLogger(__name__)

_REGISTRY = HeaderRegistry()


@functools.lru_cache(maxsize=1024)
def _cached_header(name: str, value: str) -> BaseHeader:
    return _REGISTRY(name, value)


def _header_factory(name: str, value: str) -> BaseHeader:
    """``policy.default``'s header objects, cached: the parser itself reads Content-Type four
    times per part and each read parses it afresh (most of a small mail's parse time).
    Header objects are immutable, so equal raw values can share one."""
    return _cached_header(name, value) if len(value) <= 2000 else _REGISTRY(name, value)


POLICY = policy.default.clone(header_factory=_header_factory)

_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic)?[\s-]*(reply|response|antwort)|auto:|autoreply|out of (the )?office|"
    r"abwesenheitsnotiz|automatische antwort|abwesend|automatische abwesenheitsnotiz|"
    r"r[ée]ponse automatique|absence du bureau|message d'absence|absent du bureau|"
    r"ich bin (nicht|ab)|je suis absent)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification|mail delivery failed|"
    r"returned mail|failure notice|unzustellbar|nicht zustellbar|non remis|"
    r"[ée]chec de (la )?remise|delivery failure)",
    re.IGNORECASE,
)
_RECEIPT_SUBJECT_RE = re.compile(r"^\s*(read|gelesen|lu)\s*:", re.IGNORECASE)
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
_MSGID_RE = re.compile(r"<[^<>\s]{1,250}>")
_QUOTE_CONTAINERS = (
    "//blockquote",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote_container ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_attr ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' protonmail_quote ')]",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' zmail_extra ')]",
)
# Outlook puts the quoted mail *after* these, as siblings: cut from here to the end.
_CUT_FROM = (
    "//*[@id='divRplyFwdMsg']",
    "//*[@id='appendonsend']",
    "//*[@id='mail-editor-reference-message-container']",
    "//*[@name='messageReplySection']",
    "//hr[@id='stopSpelling']",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' OutlookMessageHeader ')]",
    "//*[contains(., '##- Lyra -##') and not(.//*[contains(., '##- Lyra -##')])]",
)
_INSCRIPTIS = ParserConfig(display_links=False, display_images=False)
_CHARSET_FALLBACKS = ("utf-8", "windows-1252")
# What browsers do (WHATWG Encoding): these labels mean windows-1252, whose bytes 0x80-0x9F
# are "€", "‚", "„", "…", "–", "—", curly quotes; Windows clients send them under these labels.
_MEANS_1252 = frozenset(
    {"us-ascii", "ascii", "iso-8859-1", "iso8859-1", "iso_8859-1", "latin-1", "latin1", "l1",
     "cp819", "ibm819", "iso-ir-100", "csisolatin1", "x-cp1252", "cp1252", "windows-1252"}
)  # fmt: skip


def _windows_1252(error: UnicodeError) -> tuple[str, int]:
    """The five bytes windows-1252 leaves undefined decode to the C1 control of that number
    (as browsers do), so one stray byte cannot make a whole part fall back to latin-1."""
    assert isinstance(error, UnicodeDecodeError)
    return chr(error.object[error.start]), error.start + 1


codecs.register_error("lyra-1252", _windows_1252)
# An RFC 2047 word labelled iso-8859-1 decodes 0x80 to U+0080: read those C1 controls as the
# windows-1252 characters they were meant to be (no one writes C1 controls in a subject).
_C1_AS_1252 = {b: bytes([b]).decode("windows-1252", errors="lyra-1252") for b in range(0x80, 0xA0)}
# Characters lxml refuses (controls, lone surrogates, non-characters); no mail client means them.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


@dataclass
class Bounce:
    """What a delivery status notification says about our mail."""

    recipients: list[str] = field(default_factory=list)  # hard-failed addresses
    status: str = ""
    diagnostic: str = ""
    original_id: str = ""
    hard: bool = False


@dataclass
class ParsedMail:
    message_id: str
    sender: str = ""
    sender_name: str = ""
    subject: str = ""
    recipients: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # In-Reply-To first, then References
    machine: str | None = None  # auto_reply | bounce | receipt | own | list
    machine_reason: str = ""
    text: str = ""  # the new text: above the first quote, without signature
    quoted: str = ""  # everything else of the body (the doubtful part included)
    doubtful: str = ""  # below a weak sign of a quote: its commands stop the mail
    bounce: Bounce | None = None
    size: int = 0
    problems: list[str] = field(default_factory=list)


def read_mail(raw: bytes, own_addresses: set[str] | frozenset[str] = frozenset()) -> ParsedMail:
    """Parse raw RFC 822 bytes. Never raises: what cannot be read is left empty."""
    try:
        msg = BytesParser(policy=POLICY).parsebytes(raw)
    except Exception:  # the parser is meant not to raise; a defect here must not stop us
        log.exception("could not parse an inbound mail")
        return ParsedMail(message_id=synthetic_id(raw), size=len(raw), problems=["unparseable"])
    mail = ParsedMail(message_id=synthetic_id(raw), size=len(raw))
    _read_headers(msg, mail)
    if mail.message_id.endswith("@lyra.invalid>"):
        mail.message_id = _first_id(_header(msg, "Message-ID")) or mail.message_id
    ctype, params = content_type(msg)
    verdict = machine_verdict(msg, mail, own_addresses, ctype, params)
    if verdict:
        mail.machine, mail.machine_reason = verdict
        if mail.machine == "bounce":
            mail.bounce = read_bounce(msg)
        return mail
    body = body_text(msg, ctype, params)
    split = split_body(body)
    mail.text, mail.doubtful = split.text, split.doubtful
    mail.quoted = "\n".join(x for x in (split.doubtful, split.quoted) if x)
    return mail


def synthetic_id(raw: bytes) -> str:
    """A stable key for a mail without a usable Message-ID (same bytes, same key)."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@lyra.invalid>"


def _headers(msg: Message, name: str) -> list[str]:
    """Every value of a header, unfolded and with RFC 2047 words decoded.

    Read from the raw values: the header registry of ``policy.default`` would parse (and
    could choke on) every structured header, which costs more than the rest of the mail.
    """
    wanted = name.lower()
    values = []
    for key, raw in msg.raw_items():
        if key.lower() == wanted:
            value = _undo_surrogates(" ".join(str(raw).split()))
            if "=?" in value:
                with contextlib.suppress(HeaderParseError, LookupError, UnicodeError, ValueError):
                    value = str(make_header(decode_header(value))).translate(_C1_AS_1252)
            values.append(value)
    return values


def _undo_surrogates(value: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: read them as UTF-8 (or cp1252)."""
    if value.isascii() or not _SURROGATE_RE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", errors="lyra-1252")


def _header(msg: Message, name: str) -> str:
    values = _headers(msg, name)
    return values[0] if values else ""


def _first_id(value: str) -> str:
    match = _MSGID_RE.search(value)
    return match.group(0) if match else ""


def _addresses(value: str) -> list[str]:
    out = []
    for _, addr in getaddresses([value]):
        addr = addr.strip().lower()
        if "@" in addr and not any(ch in addr for ch in " \r\n<>"):
            out.append(addr)
    return out


def _read_headers(msg: Message, mail: ParsedMail) -> None:
    name, addr = parseaddr(_header(msg, "From"))
    mail.sender = addr.strip().lower() if "@" in addr else ""
    mail.sender_name = name[:200]
    mail.subject = _header(msg, "Subject")[:300]
    for header in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"):
        for value in _headers(msg, header):
            mail.recipients.extend(_addresses(value))
    ids = _MSGID_RE.findall(_header(msg, "In-Reply-To"))
    ids += reversed(_MSGID_RE.findall(_header(msg, "References")))
    mail.references = list(dict.fromkeys(ids))[:50]


# --- machines -------------------------------------------------------------------------


def content_type(part: Message) -> tuple[str, dict[str, str]]:
    """Content type and its parameters, parsed once: with ``policy.default`` every
    ``get_content_type``/``get_param`` call parses the header again."""
    try:
        header = part.get("Content-Type")
    except Exception:
        header = None
    parsed = getattr(header, "content_type", None)
    if header is None or parsed is None:
        return part.get_content_type(), {}
    ctype = str(parsed).lower()
    if ctype.count("/") != 1:
        ctype = "text/plain"
    try:
        params = {str(k).lower(): str(v) for k, v in header.params.items()}
    except Exception:
        params = {}
    return ctype, params


def machine_verdict(
    msg: Message,
    mail: ParsedMail,
    own_addresses: set[str] | frozenset[str],
    ctype: str | None = None,
    params: dict[str, str] | None = None,
) -> tuple[str, str] | None:
    """Why this mail was written by a machine (RFC 3834 and common practice), or None.

    ``X-Auto-Response-Suppress`` is deliberately ignored: Outlook sets it on ordinary mail.
    """
    if ctype is None:
        ctype, params = content_type(msg)
    params = params or {}
    if ctype == "multipart/report":
        report = params.get("report-type", "").lower()
        if report == "disposition-notification":
            return "receipt", "read receipt (multipart/report)"
        return "bounce", f"delivery report ({report or 'report'})"
    for part in _walk(msg) if msg.is_multipart() else ():
        part_type = content_type(part)[0]
        if part_type in {"message/delivery-status", "message/global-delivery-status"}:
            return "bounce", "delivery status part"
        if part_type == "message/disposition-notification":
            return "receipt", "read receipt"
    sender = mail.sender
    local = sender.partition("@")[0]
    if sender and (sender in own_addresses or _is_own_plus(sender, own_addresses)):
        return "own", "sent by Lyra's own address"
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return "auto_reply", f"Auto-Submitted: {auto[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if _header(msg, name):
            return "auto_reply", name
    precedence = _header(msg, "Precedence").lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return "auto_reply", f"Precedence: {precedence}"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "list", "mailing list"
    if local in {"mailer-daemon", "postmaster"} or _header(msg, "Return-Path") == "<>":
        return "bounce", "sent by a mail server"
    subject = mail.subject
    if _BOUNCE_SUBJECT_RE.match(subject):
        return "bounce", "bounce subject"
    if _AUTO_SUBJECT_RE.match(subject):
        return "auto_reply", "auto-reply subject"
    if _RECEIPT_SUBJECT_RE.match(subject):
        return "receipt", "read receipt subject"
    return None


def _is_own_plus(sender: str, own: set[str] | frozenset[str]) -> bool:
    local, _, domain = sender.partition("@")
    base = local.split("+", 1)[0]
    return f"{base}@{domain}" in own


def _walk(msg: Message, limit: int = 200):
    for count, part in enumerate(msg.walk()):
        if count >= limit:
            return
        yield part


def read_bounce(msg: Message) -> Bounce:
    """Recipients that failed for good (5.x.x), and which of our mails it was."""
    bounce = Bounce()
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype in {"message/delivery-status", "message/global-delivery-status"}:
            for block in _status_blocks(part):
                action = str(block.get("Action", "")).strip().lower()
                status = str(block.get("Status", "")).strip()
                recipient = str(
                    block.get("Final-Recipient") or block.get("Original-Recipient") or ""
                )
                address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
                if status and not bounce.status:
                    bounce.status = status[:16]
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
                if diagnostic and not bounce.diagnostic:
                    bounce.diagnostic = diagnostic.split(";", 1)[-1].strip()[:500]
                if action == "failed" and status.startswith("5") and "@" in address:
                    bounce.recipients.append(address)
        elif ctype == "message/rfc822" and not bounce.original_id:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                bounce.original_id = _first_id(_header(inner[0], "Message-ID"))
        elif ctype == "text/rfc822-headers" and not bounce.original_id:
            headers = HeaderParser(policy=POLICY).parsestr(_part_text(part))
            bounce.original_id = _first_id(_header(headers, "Message-ID"))
    bounce.hard = bool(bounce.recipients)
    return bounce


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(block) for block in re.split(r"\n\s*\n", text) if block]


# --- the body -------------------------------------------------------------------------


def body_text(msg: Message, ctype: str | None = None, params: dict[str, str] | None = None) -> str:
    """The text the sender wrote: text/plain if there is a useful one, else the HTML as text."""
    if ctype is None:
        ctype, params = content_type(msg)
    if not msg.is_multipart() and ctype in {"text/plain", "text/html"}:
        # The common case: one part, already typed; get_body's search is not needed.
        if ctype == "text/html":
            return html_to_text(_part_text(msg, (params or {}).get("charset")))
        return _plain_text(msg, params or {})
    plain = html = None
    if isinstance(msg, EmailMessage):
        try:
            plain = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
        except Exception:
            plain = html = None
    elif msg.get_content_type() == "text/plain":
        plain = msg
    if plain is None and html is None and msg.get_content_maintype() == "text":
        plain = msg if msg.get_content_subtype() != "html" else None
        html = msg if msg.get_content_subtype() == "html" else None
    if plain is not None:
        text = _plain_text(plain, content_type(plain)[1])
        if text.strip():
            return text
    if html is not None:
        return html_to_text(_part_text(html))
    return ""


def _plain_text(part: Message, params: dict[str, str]) -> str:
    text = _part_text(part, params.get("charset"))
    if params.get("format", "").lower() == "flowed":
        text = unflow(text, params.get("delsp", "").lower() == "yes")
    return text


def _part_text(part: Message, charset: str | None = None) -> str:
    """Decode a text part: declared charset, then UTF-8, windows-1252, latin-1."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if data is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    declared = (charset if charset is not None else part.get_content_charset() or "").lower()
    candidates = [declared] if declared else []
    if declared in _MEANS_1252:
        # Mislabelled UTF-8 is common (and real 8-bit text rarely parses as UTF-8).
        candidates = ["utf-8"]
    for charset in [*candidates, *_CHARSET_FALLBACKS]:
        try:
            if charset == "windows-1252":
                return data.decode("windows-1252", errors="lyra-1252")
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1", errors="replace")


def unflow(text: str, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed: join soft-broken lines, keep quote depth."""
    out: list[str] = []
    current: str | None = None
    current_depth = -1
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]
        flowed = body.endswith(" ") and body.rstrip() != "--"
        if flowed and delsp:
            body = body[:-1]
        if current is not None and depth == current_depth:
            current += body
        else:
            if current is not None:
                out.append(_requote(current, current_depth))
            current, current_depth = body, depth
        if not flowed:
            out.append(_requote(current, current_depth))
            current, current_depth = None, -1
    if current is not None:
        out.append(_requote(current, current_depth))
    return "\n".join(out)


def _requote(text: str, depth: int) -> str:
    return (">" * depth + " " + text) if depth > 0 else text


def html_to_text(html: str) -> str:
    """HTML without the quoted mail (client quote containers removed) as plain text."""
    html = _XML_UNSAFE.sub("", html)
    if not html.strip():
        return ""
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return ""
    for xpath in _CUT_FROM:
        for element in doc.xpath(xpath):
            _cut_from(element)
    for xpath in _QUOTE_CONTAINERS:
        for element in doc.xpath(xpath):
            if element.getparent() is not None:
                element.drop_tree()
    try:
        return Inscriptis(doc, _INSCRIPTIS).get_text()
    except Exception:
        log.exception("could not convert an HTML body to text")
        return ""


def _cut_from(element: etree._Element) -> None:
    """Remove ``element`` and everything after it in document order."""
    node = element
    while node is not None and node.getparent() is not None:
        parent = node.getparent()
        for sibling in list(node.itersiblings()):
            parent.remove(sibling)
        node.tail = None
        node = parent
    if element.getparent() is not None:
        element.getparent().remove(element)


def address_of(value: str) -> str:
    """A bare lower-case address, or empty when ``value`` is not one."""
    try:
        return Address(addr_spec=value.strip()).addr_spec.lower()
    except (ValueError, IndexError, TypeError):
        return ""
