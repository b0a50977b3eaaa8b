"""One amount parser for every channel: mail, Slack modal, CLI and API read money alike.

A number is read with Babel's ``parse_decimal`` (strict) in the user's locale first. What the
locale does not accept is read by its shape, so a partner whose client or habit differs from
its settings is still understood: ``12'000``, ``12’000``, ``12 000``, ``12.000,50``,
``12,000.50``, ``12k``, ``1,5 Mio``, with a currency code or symbol before or after (``CHF``,
``EUR``, ``€``, ``Fr.``, ``$``) and a Swiss ``.-``.

Money has at most two decimals, so one separator followed by exactly three digits groups
thousands in every locale (``12.000`` and ``12,000`` are twelve thousand, also in ``en`` and
``de``); more than two decimals otherwise is refused rather than rounded.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    get_currency_symbol,
    list_currencies,
    parse_decimal,
)

MAX = Decimal("1e12")
CENT = Decimal("0.01")
# Where the symbols are collected from: the locales of Lyra's tenants and their neighbours.
_SYMBOL_LOCALES = (
    "en",
    "en_US",
    "en_GB",
    "en_CH",
    "de",
    "de_CH",
    "de_AT",
    "fr",
    "fr_CH",
    "it",
    "it_CH",
    "es",
    "nl",
    "pt",
    "sv",
    "da",
    "nb",
    "fi",
    "pl",
    "cs",
)
_COMMON = ("CHF", "EUR", "USD", "GBP")
_WORDS = {
    "fr.": "CHF", "fr": "CHF", "sfr.": "CHF", "sfr": "CHF", "franken": "CHF", "francs": "CHF",
    "franchi": "CHF", "€": "EUR", "euro": "EUR", "euros": "EUR", "$": "USD", "£": "GBP",
}  # fmt: skip
_GROUP = "'’ʼ´\u00a0\u202f\u2009 "  # always thousands groups (apostrophes, spaces)
_MULTIPLIERS = {"k": 1000, "tsd": 1000, "tsd.": 1000, "m": 1_000_000, "mio": 1_000_000,
                "mio.": 1_000_000, "mn": 1_000_000}  # fmt: skip


class AmountError(ValueError):
    """The text does not start with (or is not) an amount."""


class Amount(NamedTuple):
    value: Decimal  # quantized to cents, 0 <= value < 1e12
    currency: str | None  # ISO code when the text named one


@functools.cache
def _currencies() -> dict[str, str]:
    """Lower-cased code, symbol or word → ISO code."""
    table = {code.lower(): code for code in list_currencies()}
    table.update(_spoken())
    return table


@functools.cache
def _spoken() -> dict[str, str]:
    """Symbols and words, and the common codes, which match in any case (``chf``, ``Eur``).
    Other ISO codes match only in capitals: "12000 all inclusive" names no lek."""
    table = {code.lower(): code for code in _COMMON}
    for locale in _SYMBOL_LOCALES:
        for code in _COMMON:
            table.setdefault(get_currency_symbol(code, locale).lower(), code)
    table.update(_WORDS)
    return table


@functools.cache
def _pattern() -> re.Pattern[str]:
    spoken = "|".join(re.escape(n) for n in sorted(_spoken(), key=len, reverse=True))
    codes = "|".join(sorted(list_currencies()))
    cur = rf"(?:(?i:{spoken})|(?:{codes}))(?![^\W\d_])"
    sep = re.escape(_GROUP + ".,")
    mult = "|".join(re.escape(m) for m in sorted(_MULTIPLIERS, key=len, reverse=True))
    space = r"[\s\u00a0\u202f]*"
    return re.compile(
        rf"(?P<cur1>{cur})?{space}"
        rf"(?P<num>\d{{1,3}}(?:[{sep}]\d{{3}})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"
        rf"(?:{space}(?P<mult>(?i:{mult}))(?![^\W\d_]))?"
        r"(?P<dash>[.,]?[-–—]{1,2}(?!\d))?"
        rf"(?:{space}(?P<cur2>{cur}))?"
    )


def read_amount(text: str, locale: str | None = "en") -> tuple[Amount, str]:
    """The amount at the start of ``text`` and the rest of the text (a note, say).

    Raises ``AmountError`` when ``text`` does not start with an amount, or when letters or
    digits are glued to it (``12x000``)."""
    stripped = text.strip()
    match = _pattern().match(stripped)
    if not match:
        raise AmountError(text)
    rest = stripped[match.end() :]
    if rest[:1].isalnum():
        raise AmountError(text)
    first, second = match.group("cur1"), match.group("cur2")
    if first and second and _code(first) != _code(second):
        raise AmountError(text)  # "CHF 12 EUR"
    value = _number(match.group("num"), locale)
    multiplier = match.group("mult")
    if multiplier:
        value *= _MULTIPLIERS[multiplier.lower()]
    if value != value.quantize(CENT) or not Decimal(0) <= value < MAX:
        raise AmountError(text)
    code = _code(first or second) if (first or second) else None
    return Amount(value.quantize(CENT), code), rest.strip()


def parse_amount(text: str, locale: str | None = "en") -> Amount:
    """``text`` is one amount and nothing else (a form field, a CLI option, an API value)."""
    amount, rest = read_amount(text, locale)
    if rest:
        raise AmountError(text)
    return amount


def _code(name: str) -> str:
    return _currencies()[name.lower()]


def _number(raw: str, locale: str | None) -> Decimal:
    """The user's locale first; what it does not accept, by the shape of the number."""
    babel_locale = _locale(locale)
    if babel_locale is not None:
        try:
            value = parse_decimal(raw, locale=babel_locale, strict=True)
        except (NumberFormatError, ValueError, InvalidOperation):
            value = None
        if value is not None and value.is_finite() and _places(value) <= 2:
            return value
    return _by_shape(raw)


def _by_shape(raw: str) -> Decimal:
    """Apostrophes and spaces group; with both "." and "," the last one is the decimal
    point; a lone one is a decimal point unless exactly three digits follow it."""
    digits = raw.translate(str.maketrans("", "", _GROUP))
    points = [ch for ch in digits if ch in ".,"]
    whole, fraction = digits, ""
    if points:
        tail = digits[digits.rfind(points[-1]) + 1 :]
        if len(set(points)) == 2 or (len(points) == 1 and len(tail) != 3):
            if points.count(points[-1]) != 1:
                raise AmountError(raw)  # "1.000,000,50"
            whole, fraction = digits[: digits.rfind(points[-1])], tail
        if not re.fullmatch(r"\d+|\d{1,3}([.,]\d{3})+", whole) or re.match(r"0[\d.,]", whole):
            raise AmountError(raw)
        whole = re.sub(r"[.,]", "", whole)
    if len(fraction) > 2:
        raise AmountError(raw)
    try:
        return Decimal(f"{whole}.{fraction or '0'}")
    except InvalidOperation:
        raise AmountError(raw) from None


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


@functools.lru_cache(maxsize=64)
def _locale(name: str | None) -> Locale | None:
    if not name:
        return None
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None
