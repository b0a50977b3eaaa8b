"""Where the new text of a reply ends and the quoted mail begins.

Quotes are recognised by structure as well as by words, so a client set to a language the
word tables lack is still read right:

- our marker (``##- Lyra -##``), and lines of a mail Lyra sent (``cut_own``);
- quote markers: ``>`` and ``|`` at the start of a line;
- header blocks: a run of ``Name: value`` lines carrying an address and a date, or starting
  with a known "From" word (Outlook in 15 languages, also as one line);
- attribution lines ending in a colon that carry an address or a date ("On … wrote:",
  "Il giorno … ha scritto:", Gmail's "2026-11-02 10:14 GMT+01:00 Mia <mia@…>:");
- separators: rules of dashes, underscores or equals, with or without words between them
  ("-----Mensaje original-----", Zoho's "---- On … wrote ----"), also wrapped in bold ``*``;
- signatures ("-- ", "Sent from my iPhone" in many languages).

A weaker sign (a line with an address and a date but no colon, a header-like run without
both) does not make what follows quoted for sure: it goes to ``Split.doubtful``, and a
command found there stops the whole mail (act on nothing, ask).

No reply-parsing library is used: they cut at heuristic signatures ("- item" lists,
"Thanks,"), which would silently drop commands, none knows our marker or bottom-posting, and
the best kept of them (mail-parser-reply) lacks Norwegian, Portuguese and Finnish and has no
structural rules; its word lists informed the tables below.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MARKER = "##- Lyra -##"
_MARKER_RE = re.compile(r"##-\s*Lyra\s*-##", re.IGNORECASE)
_QUOTED_RE = re.compile(r"^[ \t\u00a0]*(?:>|\|(?!\|))")

# --- words of Europe's common mail clients (matched case-blind, after _clean) ---------------

_FROM = (
    "from", "von", "de", "da", "van", "från", "fra", "lähettäjä", "od", "feladó", "kimden",
    "de la", "afsender", "avsändare", "remitente", "mittente", "expéditeur",
)  # fmt: skip
_SENT = (
    "sent", "date", "gesendet", "datum", "envoyé", "envoyé le", "inviato", "inviato il", "data",
    "enviado", "enviado el", "enviada em", "enviado em", "fecha", "verzonden", "verstuurd",
    "skickat", "sendt", "dato", "lähetetty", "päivämäärä", "wysłano", "wysłane", "odesláno",
    "elküldve", "dátum", "trimis", "tarih", "gönderildi", "sent on",
)  # fmt: skip
_TO = (
    "to", "an", "à", "a", "para", "aan", "till", "til", "vastaanottaja", "do", "komu",
    "címzett", "către", "kime", "destinatario", "destinataire", "reply-to", "antwort an",
)  # fmt: skip
_SUBJECT = (
    "subject", "betreff", "objet", "oggetto", "asunto", "assunto", "onderwerp", "ämne", "emne",
    "aihe", "temat", "předmět", "tárgy", "subiect", "konu",
)  # fmt: skip
_CC = ("cc", "bcc", "kopie", "copie", "copia", "ccn", "cco", "kopia", "kopi", "kopio", "dw",
       "másolat", "organisation", "organization")  # fmt: skip
_HEADER_WORDS = frozenset(_FROM + _SENT + _TO + _SUBJECT + _CC)
_FROM_WORDS = frozenset(_FROM)

_WROTE = (
    r"wrote|writes|schrieb|geschrieben|a\s+[ée]crit|ha\s+scritto|escribi[óo]|escreveu|"
    r"schreef|skrev|kirjoitti|napisa[łl](?:\(a\)|a)?|pisze|napsal(?:\(a\)|a)?|[íi]rta|"
    r"a\s+scris|yazd[ıi]"
)
_WROTE_RE = re.compile(rf"\b(?:{_WROTE})\b", re.IGNORECASE)
# Words an attribution starts with: on, am, le, il (giorno), el, em, op, den, dnia, dne, …
_ATTRIBUTION_START = re.compile(
    r"^(?:on|am|le|il|el|em|op|den|w dniu|dnia|dne|kl)\b", re.IGNORECASE
)
_SEPARATOR_WORDS = (
    r"original message|ursprüngliche nachricht|originalnachricht|message d'origine|"
    r"message original|messaggio originale|mensaje original|mensagem original|"
    r"oorspronkelijk bericht|origineel bericht|ursprungligt meddelande|originalmeddelande|"
    r"opprinnelig melding|original melding|oprindelig meddelelse|original meddelelse|"
    r"alkuperäinen viesti|wiadomość oryginalna|oryginalna wiadomość|původní zpráva|"
    r"eredeti üzenet|mesaj original|orijinal mesaj|forwarded message|weitergeleitete nachricht|"
    r"message transf[ée]r[ée]|messaggio inoltrato|mensaje reenviado|mensagem encaminhada|"
    r"doorgestuurd bericht|vidarebefordrat meddelande|videresendt melding|"
    r"videresendt meddelelse|välitetty viesti|przekazana wiadomość|wiadomość przekazana|"
    r"přeposlaná zpráva|továbbított üzenet|mesaj redirec[țt]ionat|iletilen mesaj"
)
_FORWARD_INTRO_RE = re.compile(
    r"^(begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"d[ée]but du message r[ée]exp[ée]di[ée]|inizio messaggio inoltrato|"
    r"inicio del mensaje reenviado|in[íi]cio da mensagem reencaminhada|"
    r"begin doorgestuurd bericht|vidarebefordrat (?:mejl|brev|meddelande)|"
    r"videresendt (?:melding|e-post)|start på videresendt (?:besked|meddelelse)|"
    rf"początek przekazywanej wiadomości|{_SEPARATOR_WORDS})\s*:?$",
    re.IGNORECASE,
)
_SIGNATURE_RES = (
    re.compile(r"^--\s*$"),
    re.compile(
        r"^(sent from my|sent from mail for|sent from outlook|get outlook for|"
        r"von meinem .{1,40} gesendet|gesendet von meinem|gesendet mit|gesendet von|"
        r"envoy[ée] de mon|envoy[ée] depuis mon|obtenir outlook pour|holen sie sich outlook|"
        r"inviato da|scarica outlook per|enviado desde mi|enviado desde|obtener outlook para|"
        r"enviado do meu|enviado a partir d[eo]|verzonden (?:vanaf|met) mijn|"
        r"skickat från min|skickat från|sendt fra min|sendt fra|lähetetty (?:iphonesta|"
        r"androidista|laitteesta)|wysłane z (?:mojego|iphone|urządzenia)|odesláno z)",
        re.IGNORECASE,
    ),
)

# --- structure -------------------------------------------------------------------------------

_FIELD_RE = re.compile(
    r"^[*_\s]*(?P<name>[^\W\d_][^\W\d_'’.-]*(?:[ '’.-][^\W\d_]+){0,2})[*_\s]*:(?!//)[*_\s]*"
    r"(?P<value>.*)$"
)
_ADDRESS_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+|\[mailto:|<mailto:", re.IGNORECASE)
_DATE_RE = re.compile(
    r"(?<![\w-])(?:\d{1,2}[:.h]\d{2}(?![\d'’])|(?:19|20)\d{2}(?![\w'’-])|"
    r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)
_REF_VALUE_RE = re.compile(r"^[A-Za-z]{1,6}[-\u2011]?\d{1,9}\b")
_RULE_RE = re.compile(r"^(?:-{5,}|_{10,}|={10,}|~{10,})$")
_FRAMED_RE = re.compile(r"^([-_=~#]{2,})\s*(?P<inner>.{1,400}?)\s*([-_=~#]{2,})$")


@dataclass
class Split:
    """A body cut in three: what the sender wrote, what may be quoted, what surely is."""

    text: str
    doubtful: str
    quoted: str


def split_reply(body: str) -> tuple[str, str]:
    """(new text, quoted text); doubtful lines count as quoted (see ``split_body``)."""
    split = split_body(body)
    quoted = "\n".join(x for x in (split.doubtful, split.quoted) if x)
    return split.text, quoted


def split_body(body: str) -> Split:
    """New text: lines above the first quote, minus quote-marked lines, minus a signature.
    Bottom-posted and inline replies keep the lines written below a quote-marked block that
    an attribution line introduced."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    new: list[str] = []
    doubtful: list[str] = []
    quoted: list[str] = []
    kept = new  # where the sender's lines go: ``doubtful`` after a weak sign of a quote
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = _clean(line)
        if _QUOTED_RE.match(line):
            quoted.append(line)
            i += 1
            continue
        if _MARKER_RE.search(line) or _is_separator(stripped) or _is_signature(stripped):
            quoted.extend(lines[i:])
            break
        if _header_block_at(lines, i):
            quoted.extend(lines[i:])
            break
        span = _attribution_at(lines, i)
        if span:
            j = _next_text(lines, i + span)
            if j < n and _QUOTED_RE.match(lines[j]):
                quoted.extend(lines[i:j])
                i = j
                continue
            quoted.extend(lines[i:])
            break
        if kept is new and _doubtful_at(lines, i):
            kept = doubtful
        kept.append(line)
        i += 1
    return Split("\n".join(new).strip(), "\n".join(doubtful).strip(), "\n".join(quoted))


def cut_own(text: str, sent: Iterable[str]) -> tuple[str, str]:
    """(new text, Lyra's own text): Lyra knows what it sent, so from the first line that
    opens a stretch of lines of a mail it sent (two of the next four that are not blank),
    the rest is quoted by definition, marker or not."""
    known = {_norm(x) for x in sent if len(_norm(x)) >= 8}
    if not known:
        return text, ""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _norm(line) not in known:
            continue
        window = [_norm(x) for x in lines[i : i + 8] if x.strip()][:4]
        if sum(x in known for x in window) >= min(2, len(window)):
            return "\n".join(lines[:i]).strip(), "\n".join(lines[i:])
    return text, ""


# --- rules -----------------------------------------------------------------------------------


def _clean(line: str) -> str:
    return line.replace("\xa0", " ").replace("\u200b", "").replace("\ufeff", "").strip()


def _unbold(line: str) -> str:
    """``*-------- Original Message --------*`` and ``**From:**`` lose their markers."""
    return line.strip("* \t")


def _norm(line: str) -> str:
    text = unicodedata.normalize("NFKC", line).casefold()
    return " ".join(text.lstrip("> |\t").split())


def _next_text(lines: list[str], j: int) -> int:
    while j < len(lines) and not lines[j].strip():
        j += 1
    return j


def _is_separator(line: str) -> bool:
    line = _unbold(line)
    if not line:
        return False
    if _RULE_RE.match(line) or _FORWARD_INTRO_RE.match(line):
        return True
    framed = _FRAMED_RE.match(line)
    if not framed:
        return False
    inner = framed.group("inner").strip("*_ ")
    if re.fullmatch(_SEPARATOR_WORDS, inner, re.IGNORECASE):
        return True
    if _ADDRESS_RE.search(inner) or _WROTE_RE.search(inner):
        return True  # Zoho: ---- On Mon, 02 Nov 2026 … <mia@…> wrote ----
    # Any other "----- Two Words -----" in a language not in the table, not "-- L-1004 --".
    words = inner.split()
    return 1 <= len(words) <= 5 and all(not any(ch.isdigit() for ch in w) for w in words)


def _is_signature(line: str) -> bool:
    return any(regex.match(line) for regex in _SIGNATURE_RES)


def _field(line: str) -> tuple[str, str] | None:
    """``Name: value``; not ``Claim: L-1042`` (a command names a lead, a header does not)."""
    match = _FIELD_RE.match(_clean(line))
    if not match or len(match.group("name")) > 30 or _REF_VALUE_RE.match(match.group("value")):
        return None
    return " ".join(match.group("name").casefold().split()), match.group("value")


def _header_run(lines: list[str], i: int) -> list[tuple[str, str]]:
    """The ``Name: value`` lines from ``i`` on (a wrapped value may take one extra line)."""
    run: list[tuple[str, str]] = []
    j, loose = i, 0
    while j < len(lines) and len(run) < 10:
        if not lines[j].strip():
            if run and j + 1 < len(lines) and _field(lines[j + 1]) and loose < 2:
                loose += 1
                j += 1
                continue
            break
        field = _field(lines[j])
        if field is None:
            if not run or loose >= 2 or _QUOTED_RE.match(lines[j]):
                break
            loose += 1
            run[-1] = (run[-1][0], f"{run[-1][1]} {_clean(lines[j])}")
        else:
            run.append(field)
        j += 1
    return run


def _header_block_at(lines: list[str], i: int) -> bool:
    """A header block of the quoted mail starts here (any client, any language)."""
    line = _clean(lines[i])
    one_line = _one_line_header(line)
    if one_line:
        return True
    run = _header_run(lines, i)
    if len(run) < 2:
        return False
    names = [name for name, _ in run]
    values = " ".join(value for _, value in run)
    known = sum(name in _HEADER_WORDS for name in names)
    if names[0] in _FROM_WORDS and known >= 2:
        return True
    has_address, has_date = bool(_ADDRESS_RE.search(values)), bool(_DATE_RE.search(values))
    if known >= 2 and (has_address or has_date):
        return True  # Thunderbird's forward starts with Subject: or Date:
    if len(run) >= 4 and has_date:
        return True  # From/Sent/To/Subject in a language the tables lack, names only
    return len(run) >= 3 and has_address and has_date


def _one_line_header(line: str) -> bool:
    """``From: Mia Sent: Monday … To: … Subject: …`` on one line (Outlook on phones)."""
    line = _unbold(line)
    field = _field(line)
    if field is None or field[0] not in _FROM_WORDS:
        return False
    later = re.findall(r"(?:^|\s)[*_]*([^\W\d_]+(?: [^\W\d_]+)?)[*_]*\s*:", field[1])
    return any(word.casefold() in _SENT for word in later)


def _attribution_at(lines: list[str], i: int) -> int:
    """Lines (1-3) of an attribution ("On … wrote:") that starts at line ``i``, else 0."""
    first = _unbold(_clean(lines[i]))
    if not first or _QUOTED_RE.match(lines[i]):
        return 0
    opens = bool(
        _ATTRIBUTION_START.match(first) or _ADDRESS_RE.search(first) or _DATE_RE.search(first)
    )
    joined = ""
    for span in range(1, 4):
        if i + span - 1 >= len(lines) or (span > 1 and not lines[i + span - 1].strip()):
            break
        part = _unbold(_clean(lines[i + span - 1]))
        joined = f"{joined} {part}".strip() if joined else part
        if len(joined) > 600:
            break
        if (
            (opens or span == 1)
            and joined.endswith(":")
            and _is_attribution(joined, lines, i + span)
        ):
            return span
    return 0


def _is_attribution(text: str, lines: list[str], after: int) -> bool:
    address = bool(_ADDRESS_RE.search(text))
    date = bool(_DATE_RE.search(text))
    if _WROTE_RE.search(text) and (address or date or _ATTRIBUTION_START.match(text)):
        return True
    if address and (date or len(text) <= 300):
        return True  # Gmail's "2026-11-02 10:14 GMT+01:00 Mia Muster <mia@…>:"
    if date:
        j = _next_text(lines, after)
        return j < len(lines) and bool(_QUOTED_RE.match(lines[j]))
    return False


def _doubtful_at(lines: list[str], i: int) -> bool:
    """A weaker sign of a quote: an address and a date on one short line (an attribution
    without its colon), a short line with a date ending in a colon (an attribution without
    a name), or a header-like run with an address or a date."""
    line = _unbold(_clean(lines[i]))
    named = _ADDRESS_RE.search(line) or (line.endswith(":") and not _field(line))
    if len(line) <= 300 and named and _DATE_RE.search(line):
        return True
    run = _header_run(lines, i)
    if len(run) < 2:
        return False
    values = " ".join(value for _, value in run)
    known = any(name in _HEADER_WORDS for name, _ in run)
    has_date = bool(_DATE_RE.search(values))
    return bool(_ADDRESS_RE.search(values) or (has_date and (known or len(run) >= 3)))
