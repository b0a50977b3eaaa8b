"""Where the new text of a reply ends and the quoted mail begins.

The cut is deliberately a set of explicit rules (our marker, ``>`` quotes, "On … wrote:"
headers in three languages, Outlook header blocks, forwarding separators, signatures) rather
than a general reply-parsing library: those libraries also cut at heuristic signatures
("- item" lists, "Thanks,"), which would silently drop commands, and none of them knows our
marker or bottom-posting.
"""

from __future__ import annotations

import re

MARKER = "##- Lyra -##"
_MARKER_RE = re.compile(r"##-\s*Lyra\s*-##", re.IGNORECASE)
_QUOTED_RE = re.compile(r"^[ \t]*>")
_ATTRIBUTION_RES = (
    re.compile(r"^on\b.{0,400}\bwrote\s*:$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^am\b.{0,400}\bschrieb\b.{0,300}:$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^le\b.{0,400}\ba\s+[ée]crit\s*:$", re.IGNORECASE | re.DOTALL),
    re.compile(
        r"^.{0,300}<[^<>\s]+@[^<>\s]+>.{0,80}\b(wrote|schrieb|a\s+[ée]crit)\s*:$", re.I | re.S
    ),
)
_ATTRIBUTION_START = re.compile(r"^(on|am|le)\b|<[^<>\s]+@", re.IGNORECASE)
_FIELD = r"^[*\s]*{names}\s*\*?\s*:"
_FROM_RE = re.compile(_FIELD.format(names=r"(from|von|de|from\s+name)"), re.IGNORECASE)
_HEADER_RE = re.compile(
    _FIELD.format(
        names=r"(sent|date|to|subject|cc|gesendet|datum|an|betreff|envoy[ée]|[àa]|objet|"
        r"envoy[ée]\s+le|reply-to)"
    ),
    re.IGNORECASE,
)
_ONE_LINE_HEADER_RE = re.compile(
    r"^[*\s]*(from|von|de)\s*:.{1,300}\b(sent|gesendet|envoy[ée]|date|datum)\s*:", re.IGNORECASE
)
_SEPARATOR_RES = (
    re.compile(
        r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|"
        r"forwarded message|weitergeleitete nachricht|message transf[ée]r[ée])\s*-{2,}$",
        re.IGNORECASE,
    ),
    re.compile(r"^[_=]{10,}$"),
    re.compile(r"^-{5,}$"),
    re.compile(
        r"^(begin forwarded message|anfang der weitergeleiteten nachricht|"
        r"d[ée]but du message r[ée]exp[ée]di[ée])\s*:?$",
        re.IGNORECASE,
    ),
)
_SIGNATURE_RES = (
    re.compile(r"^--\s*$"),
    re.compile(
        r"^(sent from my|sent from mail for|sent from outlook|get outlook for|"
        r"von meinem .{1,40} gesendet|gesendet von meinem|gesendet mit|"
        r"envoy[ée] de mon|envoy[ée] depuis mon|obtenir outlook pour|holen sie sich outlook)",
        re.IGNORECASE,
    ),
)


# --- the cut --------------------------------------------------------------------------


def split_reply(body: str) -> tuple[str, str]:
    """(new text, quoted text). New text: lines above the first quote, minus ``>`` lines,
    minus a signature. Bottom-posted and inline replies keep the lines written below a
    ``>`` quote that was introduced by an attribution line."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    new: list[str] = []
    quoted: list[str] = []
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
            j = i + span
            while j < n and not lines[j].strip():
                j += 1
            if j < n and _QUOTED_RE.match(lines[j]):
                quoted.extend(lines[i:j])
                i = j
                continue
            quoted.extend(lines[i:])
            break
        new.append(line)
        i += 1
    return "\n".join(new).strip(), "\n".join(quoted)


def _clean(line: str) -> str:
    return line.replace("\xa0", " ").replace("\u200b", "").strip()


def _is_separator(line: str) -> bool:
    return any(regex.match(line) for regex in _SEPARATOR_RES)


def _is_signature(line: str) -> bool:
    return any(regex.match(line) for regex in _SIGNATURE_RES)


def _header_block_at(lines: list[str], i: int) -> bool:
    """An Outlook-style header block (From:/Sent:/To:/Subject: in en/de/fr) starts here."""
    line = _clean(lines[i])
    if _ONE_LINE_HEADER_RE.match(line):
        return True
    if not _FROM_RE.match(line):
        return False
    following = [_clean(x) for x in lines[i + 1 : i + 7] if x.strip()]
    return any(_HEADER_RE.match(x) for x in following[:5])


def _attribution_at(lines: list[str], i: int) -> int:
    """Lines (1-3) forming an "On … wrote:" header that starts at line ``i``, else 0."""
    first = _clean(lines[i])
    if not first or not _ATTRIBUTION_START.search(first):
        return 0
    joined = ""
    for span in range(1, 4):
        if i + span - 1 >= len(lines):
            break
        part = _clean(lines[i + span - 1])
        joined = f"{joined} {part}".strip() if joined else part
        if len(joined) > 600:
            break
        if any(regex.match(joined) for regex in _ATTRIBUTION_RES):
            return span
    return 0
