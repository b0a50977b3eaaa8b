"""Words and formats in the reader's language: gettext catalogs and Babel formatting.

Catalogs are ``templates/locale/<lang>/LC_MESSAGES/<domain>.po``, read at run time (no
compiled ``.mo`` in the repository, so a catalog edit needs no build step). Two domains:
``mail`` (mail and web templates) and ``messages`` (reply phrases, Slack, CLI). English is the
source language: an English reader gets the msgids themselves.

Update a catalog after changing words::

    pybabel extract -F babel-mail.cfg -o /tmp/mail.pot . && \
        pybabel update -D mail -i /tmp/mail.pot -d templates/locale
    pybabel extract -F babel-messages.cfg -o /tmp/messages.pot . && \
        pybabel update -D messages -i /tmp/messages.pot -d templates/locale
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

from lyra_bot.config import TEMPLATES_DIR

LOCALES = ("de", "fr", "it", "en")
DEFAULT_LOCALE = "en"
DOMAINS = ("mail", "messages")
LOCALE_DIR: Path = TEMPLATES_DIR / "locale"


def pick_locale(*candidates: str | None) -> str:
    """The first supported locale among the candidates (``de-CH`` counts as ``de``), else en."""
    for candidate in candidates:
        if candidate:
            short = candidate.replace("_", "-").split("-")[0].lower()
            if short in LOCALES:
                return short
    return DEFAULT_LOCALE


def _load(path: Path, locale: str, domain: str) -> Translations | None:
    if not path.is_file():
        return None
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy entry is not a translation yet
    buffer.seek(0)
    return Translations(buffer, domain=domain)


@cache
def translations(locale: str | None) -> NullTranslations:
    """Every domain's catalog of ``locale`` merged into one (English: the msgids)."""
    lang = pick_locale(locale)
    merged: NullTranslations = NullTranslations()
    if lang == DEFAULT_LOCALE:
        return merged
    for domain in DOMAINS:
        loaded = _load(LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po", lang, domain)
        if loaded is None:
            continue
        if isinstance(merged, Translations):
            merged.merge(loaded)
        else:
            merged = loaded
    return merged


def gettext(locale: str | None, msgid: str, **values: Any) -> str:
    """``msgid`` in ``locale``, with ``%(name)s`` placeholders filled from ``values``."""
    text = translations(locale).ugettext(msgid)
    return text % values if values else text


def ngettext(locale: str | None, singular: str, plural: str, n: int, **values: Any) -> str:
    """The plural form for ``n`` (``num`` is filled with ``n`` unless given)."""
    text = translations(locale).ungettext(singular, plural, n)
    return text % {"num": n, **values}


@lru_cache(maxsize=64)
def babel_locale(language: str | None, country: str = "") -> Locale:
    """The language with its country's conventions where CLDR knows them
    (``de`` + ``CH`` → ``de_CH``: 12'000.00), else the language alone."""
    lang = pick_locale(language)
    if country:
        try:
            return Locale.parse(f"{lang}_{country.upper()}")
        except (UnknownLocaleError, ValueError):
            pass
    return Locale.parse(lang)


def _zone(tz: str | ZoneInfo | None) -> ZoneInfo | None:
    if tz is None or isinstance(tz, ZoneInfo):
        return tz
    return ZoneInfo(tz)


def format_datetime(
    when: datetime | None,
    locale: str | Locale | None,
    tz: str | ZoneInfo | None = None,
    *,
    format: str = "medium",
) -> str:
    """A moment as its reader writes it, in the tenant's time zone (``""`` for none)."""
    if when is None:
        return ""
    loc = locale if isinstance(locale, Locale) else babel_locale(locale)
    return _format_datetime(when, format=format, tzinfo=_zone(tz), locale=loc)


def format_date(
    when: date | datetime | None,
    locale: str | Locale | None,
    tz: str | ZoneInfo | None = None,
    *,
    format: str = "medium",
) -> str:
    if when is None:
        return ""
    if isinstance(when, datetime) and tz is not None:
        when = when.astimezone(_zone(tz))
    loc = locale if isinstance(locale, Locale) else babel_locale(locale)
    return _format_date(when, format=format, locale=loc)


def format_number(value: int | float | Decimal, locale: str | Locale | None) -> str:
    loc = locale if isinstance(locale, Locale) else babel_locale(locale)
    return format_decimal(value, locale=loc)


def format_money(
    amount: Decimal | int | float | str | None, currency: str, locale: str | Locale | None
) -> str:
    """``12'000.00 CHF`` / ``12 000,00 €`` as the reader expects (``""`` for none)."""
    if amount is None or amount == "":
        return ""
    loc = locale if isinstance(locale, Locale) else babel_locale(locale)
    return format_currency(Decimal(str(amount)), currency, locale=loc)
