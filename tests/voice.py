"""The voice check: what a reader sees must be in their words.

``voice_problems(text, locale)`` lists what gives a text away as machine talk: English words
in a text for a German, French or Italian reader, raw codes (``no_contact``,
``claim.partner``; in non-English text also ``won``, ``lost`` …), "(s)" plurals and ISO
timestamps. Links and addresses are not words and are skipped. Used on every part of every
mail of the demo in each language (``test_voice.py``); other channels' payloads (Slack) can
pass their texts through it too.
"""

from __future__ import annotations

import html
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

# Common English words that no German, French or Italian sentence of ours contains.
# ("Lead", "Partner", "Pool", "E-Mail", "no", "due", "will" are words there too: not listed.)
STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "your",
        "you",
        "please",
        "hello",
        "thank",
        "thanks",
        "with",
        "from",
        "this",
        "that",
        "these",
        "those",
        "been",
        "have",
        "has",
        "had",
        "for",
        "of",
        "to",
        "is",
        "are",
        "was",
        "were",
        "by",
        "more",
        "days",
        "day",
        "hours",
        "hour",
        "claim",
        "claims",
        "claimed",
        "reply",
        "replied",
        "here",
        "until",
        "about",
        "when",
        "what",
        "which",
        "still",
        "there",
        "they",
        "them",
        "their",
        "not",
        "cannot",
        "any",
        "our",
        "we",
        "customer",
        "customers",
        "deadline",
        "feedback",
        "report",
        "weekly",
        "lapsed",
        "lapses",
        "granted",
        "declined",
        "given",
        "take",
        "taken",
        "sale",
        "sales",
        "qualified",
        "enquiry",
        "back",
        "again",
        "yes",
    ]
)
RAW_CODES = re.compile(
    r"\b(?:no_contact|not_qualified|contact_check|already_answered|"
    r"[a-z_]+\.(?:owner|partner|customer|slack))\b"
)
BARE_CODES = frozenset({"won", "lost", "contacted", "duplicate", "claimed", "withdrawn", "closed"})
PLURAL = re.compile(r"[^\W\d_]\((?:s|e|es|n|en|i|x)\)")
ISO_TIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2})?|\b\d{4}-W\d{2}\b|\b\d{2}:\d{2}:\d{2}\b"
)
NOT_WORDS = re.compile(r"(?:https?|mailto|cid):\S+|[\w.+-]+@[\w.-]+")
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def voice_problems(text: str, locale: str) -> list[str]:
    """Every way ``text`` fails its reader (empty when it speaks their language)."""
    clean = NOT_WORDS.sub(" ", text)
    problems = [f"raw code {m!r}" for m in RAW_CODES.findall(clean)]
    problems += [f"(s) plural {m!r}" for m in PLURAL.findall(clean)]
    problems += [f"ISO timestamp {m!r}" for m in ISO_TIME.findall(clean)]
    if locale != "en":
        words = {w.lower() for w in WORD.findall(clean)}
        problems += [f"English word {w!r}" for w in sorted(words & STOP_WORDS)]
        problems += [f"raw code {w!r}" for w in sorted(words & BARE_CODES - STOP_WORDS)]
    return problems


def html_text(markup: str) -> str:
    """What a reader of the HTML sees (styles and tags dropped; alt texts and titles kept)."""
    markup = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", markup)
    shown = re.findall(r'(?i)\b(?:alt|title)="([^"]*)"', markup)
    return html.unescape(re.sub(r"<[^>]+>", " ", markup) + " " + " ".join(shown))


def mail_texts(raw: bytes) -> dict[str, str]:
    """The subject, plain text and HTML (as seen) of one mail."""
    message: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[assignment]
    texts = {"subject": str(message["Subject"])}
    plain = message.get_body(("plain",))
    if plain is not None:
        texts["text"] = plain.get_content()
    rich = message.get_body(("html",))
    if rich is not None:
        texts["html"] = html_text(rich.get_content())
    return texts
