"""The command grammar of reply mails: one command per line, in English, German, French or
Italian (PRENDI, VINTO, PERSO, CONTATTATO, NESSUN CONTATTO, NON QUALIFICATO, DUPLICATO,
RESTITUISCI, PROROGA, MIEI, AIUTO; the owner: APPROVA / RIFIUTA).

A line is a command only when it *starts* with a keyword (after bullets, bold markers and
quotes), so prose that merely mentions "claim" is never acted on. Case, accents, punctuation,
non-breaking spaces and dash variants do not matter: ``claim l-1042``, ``Claim: L-1042.``,
``**CLAIM** L1042`` and ``ÜBERNEHMEN L‑1042`` all read the same.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lyra_bot import commands as c
from lyra_bot.amounts import read_amount
from lyra_bot.domain import InvalidInput, normalize_ref

# canonical keyword -> spellings (accent-free, lower case; words may be joined by space,
# dash or underscore, or written together)
KEYWORDS: dict[str, tuple[str, ...]] = {
    "claim": ("claim", "ubernehmen", "uebernehmen", "prendre", "prendi"),
    "won": ("won", "gewonnen", "gagne", "vinto"),
    "lost": ("lost", "verloren", "perdu", "perso"),
    "contacted": ("contacted", "kontaktiert", "contacte", "contattato"),
    "no_contact": (
        "no contact",
        "kein kontakt",
        "keinen kontakt",
        "pas de contact",
        "sans contact",
        "injoignable",
        "nessun contatto",
    ),
    "not_qualified": (
        "not qualified",
        "nicht qualifiziert",
        "non qualifie",
        "pas qualifie",
        "non qualificato",
    ),
    "duplicate": ("duplicate", "duplikat", "doublon", "duplicato", "doppione"),
    "release": (
        "release",
        "zuruckgeben",
        "zurueckgeben",
        "freigeben",
        "rendre",
        "liberer",
        "restituisci",
    ),
    "extend": ("extend", "verlangern", "verlaengern", "prolonger", "proroga"),
    "leads": ("leads", "pool"),
    "mine": ("mine", "meine", "meine leads", "mes leads", "miei", "i miei lead"),
    "help": ("help", "hilfe", "aide", "aiuto"),
    "stop": ("stop", "stopp", "abmelden", "unsubscribe", "desabonner", "se desabonner"),
    "start": ("start", "starten", "anmelden", "subscribe", "abonner", "avvia"),
}
FEEDBACK = {"won", "lost", "contacted", "no_contact", "not_qualified", "duplicate"}
BARE = {"leads", "mine", "help", "stop", "start"}  # must stand alone on their line

_DASHES = dict.fromkeys(
    map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-"
)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_LEAD_IN = re.compile(r"^[\s>*_~`'\"«»„“”‚‘’•·◦▪‣+=#:.)(\[\]-]*")
_NUMBERING = re.compile(r"^\d{1,2}[.)]\s+")
_TRAIL = " \t*_~`'\"«»„“”‚‘’.,;:!?()[]"


def _keyword_pattern() -> tuple[re.Pattern[str], list[str]]:
    """One anchored alternation of every spelling, longest first; group ``k<i>`` names it."""
    spellings = []
    for canonical, words in KEYWORDS.items():
        for word in words:
            spellings.append((word, canonical))
    spellings.sort(key=lambda s: -len(s[0]))
    joiner = r"[\s_-]*"
    alternatives = "|".join(
        f"(?P<k{i}>{joiner.join(map(re.escape, word.split()))})"
        for i, (word, _) in enumerate(spellings)
    )
    pattern = re.compile(rf"^(?:{alternatives})(?=$|[^\w])")
    return pattern, [canonical for _, canonical in spellings]


_KEYWORD_RE, _CANONICAL = _keyword_pattern()
_REF_RE = re.compile(r"(?<![\w@/.+=%?&#~])([A-Za-z]{1,6})-?(\d{1,9})(?![\w@])")
_BARE_NUMBER_RE = re.compile(r"^#?(\d{3,9})(?![\w.,'’])")
_ATTEMPT_RE = re.compile(r"^([^\W\d_]{3,20})[\s:,.-]*[A-Za-z]{1,6}-?\d{1,9}\b")


@dataclass(frozen=True)
class ParsedCommand:
    """One command read from a line: ready for the bus, or an error to explain."""

    keyword: str
    line: str
    command: c.Command | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A stable one-line form, used by tests and logs (``ClaimLead L-1042``)."""
        if self.error:
            return f"error:{self.error}"
        cmd = self.command
        if cmd is None:
            return self.keyword
        if isinstance(cmd, c.GiveFeedback):
            parts = [cmd.kind, cmd.lead_ref, cmd.outcome]
            if cmd.amount:
                parts += [cmd.amount, cmd.currency or ""]
            text = " ".join(p for p in parts if p)
            extra = cmd.reason or cmd.note
            return f"{text} | {extra}" if extra else text
        if isinstance(cmd, c.ClaimLead | c.ReleaseClaim):
            return f"{cmd.kind} {cmd.lead_ref}"
        if isinstance(cmd, c.RequestExtension):
            return f"{cmd.kind} {cmd.lead_ref} {cmd.days}" + (
                f" | {cmd.reason}" if cmd.reason else ""
            )
        if isinstance(cmd, c.DecideExtension):
            return f"{cmd.kind} {cmd.lead_ref} {'approve' if cmd.approve else 'decline'}"
        if isinstance(cmd, c.SetDigests):
            return f"SetDigests {'on' if cmd.enabled else 'off'}"
        return cmd.kind


_REPLY_PREFIXES = ("re:", "aw:", "antw:", "ré:", "réf:", "sv:", "wg:", "fw:", "fwd:", "tr:")


def is_reply(subject: str) -> bool:
    """A subject of a reply or forward: its words are the original's, not commands."""
    return subject.strip().lower().startswith(_REPLY_PREFIXES)


def normalize_line(line: str) -> str:
    """NFKC (non-breaking and odd spaces become spaces), dash variants become ``-``."""
    return unicodedata.normalize("NFKC", line).translate(_INVISIBLE).translate(_DASHES).strip()


def _fold(text: str) -> str:
    """Lower case without accents, one character for one, so offsets stay valid."""
    out = []
    for ch in text.lower():
        base = unicodedata.normalize("NFKD", ch)[:1] or ch
        out.append(base if len(base) == 1 else ch)
    return "".join(out)


def _clean_rest(text: str) -> str:
    return text.strip().lstrip(":-*_ \t").strip().strip(_TRAIL).strip()


def parse_lines(
    text: str, default_ref: str | None = None, prefix: str = "L-", locale: str | None = "en"
) -> list[ParsedCommand]:
    """Every command in ``text`` (the new text of a reply), in order; amounts are read in
    the writer's ``locale`` first."""
    found: list[ParsedCommand] = []
    for raw in text.splitlines():
        found.extend(parse_line(raw, default_ref, prefix, locale))
    return found


def parse_line(
    raw: str, default_ref: str | None = None, prefix: str = "L-", locale: str | None = "en"
) -> list[ParsedCommand]:
    """The commands on one line (CLAIM may name several leads); empty when it is prose."""
    line = normalize_line(raw)
    body = _NUMBERING.sub("", _LEAD_IN.sub("", line))
    if not body:
        return []
    match = _KEYWORD_RE.match(_fold(body))
    shown = line[:200]
    if match is None:
        attempt = _ATTEMPT_RE.match(body)
        if attempt and _fold(attempt.group(1)) not in _NOT_ATTEMPTS:
            return [ParsedCommand("unknown", shown, error="unknown_command", data={"line": shown})]
        return []
    keyword = _CANONICAL[int(match.lastgroup[1:])]  # type: ignore[index]
    rest = _clean_rest(body[match.end() :])
    if keyword in BARE:
        if rest and _fold(rest) not in _POLITE:
            return []  # "Stop by our booth" is prose, not STOP
        return [_bare(keyword, shown)]
    if keyword == "claim":
        return _claim(rest, shown, default_ref, prefix)
    if keyword == "extend":
        return [_extend(rest, shown, default_ref, prefix)]
    if keyword == "release":
        ref, rest = _take_ref(rest, default_ref, prefix, allow_bare=default_ref is None)
        if ref is None:
            return [_missing_ref(keyword, shown, "RELEASE", prefix)]
        return [ParsedCommand(keyword, shown, c.ReleaseClaim(ref, reason=_clean_rest(rest)[:500]))]
    return [_feedback(keyword, rest, shown, default_ref, prefix, locale)]


_POLITE = {"please", "bitte", "svp", "s'il vous plait", "merci", "thanks", "danke"}
_NOT_ATTEMPTS = {"re", "aw", "wg", "fw", "fwd", "tr", "ref", "lead", "leads", "thanks", "danke"}


def _bare(keyword: str, shown: str) -> ParsedCommand:
    commands: dict[str, c.Command | None] = {
        "leads": c.ListPool(),
        "mine": c.ListMine(),
        "stop": c.SetDigests(False),
        "start": c.SetDigests(True),
        "help": None,
    }
    return ParsedCommand(keyword, shown, commands[keyword])


def _missing_ref(keyword: str, shown: str, word: str, prefix: str) -> ParsedCommand:
    return ParsedCommand(
        keyword, shown, error="missing_ref", data={"example": f"{word} {prefix}1042"}
    )


def _ref(letters: str, digits: str, prefix: str) -> str | None:
    try:
        return normalize_ref(f"{letters}-{digits}", prefix)
    except InvalidInput:
        return None


def _claim(rest: str, shown: str, default_ref: str | None, prefix: str) -> list[ParsedCommand]:
    refs = []
    for match in _REF_RE.finditer(rest):
        ref = _ref(match.group(1), match.group(2), prefix)
        if ref and ref not in refs:
            refs.append(ref)
    if not refs:
        bare = _BARE_NUMBER_RE.match(rest)
        if bare:
            refs.append(normalize_ref(bare.group(1), prefix))
        elif default_ref:
            refs.append(default_ref)
    if not refs:
        return [_missing_ref("claim", shown, "CLAIM", prefix)]
    return [ParsedCommand("claim", shown, c.ClaimLead(ref)) for ref in refs[:20]]


_DAYS_RE = re.compile(r"^(\d{1,3})(?:\s*(?:days?|tage?n?|jours?|j|d|t)\b)?", re.IGNORECASE)


def _extend(rest: str, shown: str, default_ref: str | None, prefix: str) -> ParsedCommand:
    """``EXTEND L-1042 3 reason``: ask for more days (a bare number here is the days)."""
    ref, rest = _take_ref(rest, default_ref, prefix, allow_bare=False)
    if ref is None:
        return _missing_ref("extend", shown, "EXTEND", prefix)
    rest = _clean_rest(rest)
    days = _DAYS_RE.match(rest)
    if days is None:
        return ParsedCommand(
            "extend", shown, error="missing_days", data={"example": f"EXTEND {ref} 3 reason"}
        )
    reason = _clean_rest(rest[days.end() :])[:500]
    return ParsedCommand("extend", shown, c.RequestExtension(ref, int(days.group(1)), reason))


# --- the owner and the customer answer in fewer words -----------------------------------

_OWNER_KEYWORDS = {
    "approve": True,
    "genehmigen": True,
    "bewilligen": True,
    "accepter": True,
    "approuver": True,
    "approva": True,
    "decline": False,
    "ablehnen": False,
    "refuser": False,
    "rifiuta": False,
}
_OWNER_RE = re.compile(rf"^({'|'.join(_OWNER_KEYWORDS)})(?=$|[^\w])")


def parse_owner_lines(
    text: str, default_ref: str | None = None, prefix: str = "L-"
) -> list[ParsedCommand]:
    """APPROVE / DECLINE an extension request (GENEHMIGEN / ABLEHNEN, ACCEPTER / REFUSER)."""
    found = []
    for raw in text.splitlines():
        line = normalize_line(raw)
        body = _NUMBERING.sub("", _LEAD_IN.sub("", line))
        match = _OWNER_RE.match(_fold(body))
        if match is None:
            continue
        approve = _OWNER_KEYWORDS[match.group(1)]
        word = "APPROVE" if approve else "DECLINE"
        ref, rest = _take_ref(
            _clean_rest(body[match.end() :]), default_ref, prefix, allow_bare=default_ref is None
        )
        if ref is None:
            found.append(_missing_ref(word.lower(), line[:200], word, prefix))
            continue
        note = _clean_rest(rest)[:500]
        found.append(ParsedCommand(word.lower(), line[:200], c.DecideExtension(ref, approve, note)))
    return found


_YES_NO_RE = re.compile(r"^(yes|no|ja|nein|oui|non)(?=$|[^\w])")


def parse_yes_no_text(text: str) -> str | None:
    """A customer's YES or NO (JA/NEIN, OUI/NON): the first word of the first line written."""
    for raw in text.splitlines():
        body = _LEAD_IN.sub("", normalize_line(raw))
        if not body:
            continue
        match = _YES_NO_RE.match(_fold(body))
        return match.group(1) if match else None
    return None


def _take_ref(
    rest: str, default_ref: str | None, prefix: str, *, allow_bare: bool
) -> tuple[str | None, str]:
    """The reference at the start of ``rest`` (or the mail's own lead), and what follows."""
    match = _REF_RE.match(rest)
    if match:
        ref = _ref(match.group(1), match.group(2), prefix)
        if ref:
            return ref, rest[match.end() :]
    if allow_bare:
        bare = _BARE_NUMBER_RE.match(rest)
        if bare:
            return normalize_ref(bare.group(1), prefix), rest[bare.end() :]
    return default_ref, rest


def _feedback(
    keyword: str, rest: str, shown: str, default_ref: str | None, prefix: str, locale: str | None
) -> ParsedCommand:
    word = {
        "won": "WON",
        "lost": "LOST",
        "contacted": "CONTACTED",
        "no_contact": "NOCONTACT",
        "not_qualified": "NOTQUALIFIED",
        "duplicate": "DUPLICATE",
    }[keyword]
    # "WON 1042 12000": a bare number is the reference only when an amount follows it.
    allow_bare = default_ref is None and (
        keyword != "won" or bool(re.match(r"^#?\d{3,9}\s+\S*\d", rest))
    )
    ref, rest = _take_ref(rest, default_ref, prefix, allow_bare=allow_bare)
    if ref is None:
        return _missing_ref(keyword, shown, word, prefix)
    rest = _clean_rest(rest)
    if keyword == "won":
        example = f"WON {ref} 12000 CHF"
        if not rest:
            return ParsedCommand(keyword, shown, error="missing_amount", data={"example": example})
        try:
            amount, currency, note = parse_amount(rest, locale)
        except ValueError:
            token = rest.split()[0][:40]
            if not any(ch.isdigit() for ch in token):
                return ParsedCommand(
                    keyword, shown, error="missing_amount", data={"example": example}
                )
            return ParsedCommand(
                keyword, shown, error="bad_amount", data={"amount": token, "example": example}
            )
        return ParsedCommand(
            keyword,
            shown,
            c.GiveFeedback(ref, "won", str(amount), currency, note=note[:2000]),
        )
    if keyword == "lost":
        if not rest:
            return ParsedCommand(
                keyword,
                shown,
                error="missing_reason",
                data={"example": f"LOST {ref} price too high"},
            )
        return ParsedCommand(keyword, shown, c.GiveFeedback(ref, "lost", reason=rest[:500]))
    return ParsedCommand(keyword, shown, c.GiveFeedback(ref, keyword, note=rest[:2000]))


def parse_amount(text: str, locale: str | None = "en") -> tuple[Decimal, str | None, str]:
    """``12000``, ``12'000``, ``12.000 €``, ``12,000 EUR``, ``CHF 12k`` → (amount, currency,
    the rest of the line), read by the parser every channel uses (``lyra_bot.amounts``).
    Raises ``ValueError`` when the text does not start with a positive amount."""
    amount, rest = read_amount(text, locale)
    if amount.value <= 0:
        raise ValueError(text)
    return amount.value, amount.currency, _clean_rest(rest)
