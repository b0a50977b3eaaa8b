"""One amount parser for mail, Slack, CLI and API: what people and Babel write reads back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency, format_decimal
from hypothesis import given
from hypothesis import strategies as st

from lyra_bot.amounts import AmountError, parse_amount, read_amount

LOCALES = ["en", "en_US", "en_CH", "de", "de_CH", "de_AT", "fr", "fr_CH", "it", "it_CH",
           "es", "nl", "pt", "sv", "da", "nb", "fi", "pl", "cs"]  # fmt: skip
MONEY = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999.99"), places=2)


@pytest.mark.parametrize(
    ("text", "locale", "value", "currency"),
    [
        ("12000", "en", "12000.00", None),
        ("12'000", "en", "12000.00", None),
        ("12’000", "de", "12000.00", None),
        ("12 000", "fr", "12000.00", None),
        ("12.000,50", "en", "12000.50", None),
        ("12,000.50", "de", "12000.50", None),
        ("12.000", "en", "12000.00", None),  # money has two decimals: a group, in any locale
        ("12,000", "de", "12000.00", None),
        ("12,5", "en", "12.50", None),
        ("12.5", "de", "12.50", None),
        ("12k", "de", "12000.00", None),
        ("1,5 Mio", "de", "1500000.00", None),
        ("CHF 12'000.-", "de", "12000.00", "CHF"),
        ("Fr. 1'234.50", "fr", "1234.50", "CHF"),
        ("12.000 €", "de", "12000.00", "EUR"),
        ("€12,000.50", "en", "12000.50", "EUR"),
        ("EUR 99", "it", "99.00", "EUR"),
        ("12000 chf", "en", "12000.00", "CHF"),
        ("US$ 12", "en", "12.00", "USD"),
    ],
)
def test_what_partners_write(text, locale, value, currency):
    assert parse_amount(text, locale) == (Decimal(value), currency)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "-12", "12x000", "1234.567", "12.000.50", "1.000,000,50", "0,125", "NaN",
     "CHF 12 EUR", "1e12", "12 000 000 000 000"],
)  # fmt: skip
def test_what_is_not_an_amount(text):
    with pytest.raises(AmountError):
        parse_amount(text)


def test_the_rest_of_the_line_is_a_note_and_lowercase_words_are_not_codes():
    assert read_amount("12000 all inclusive") == ((Decimal("12000.00"), None), "all inclusive")
    assert read_amount("12'000 CHF für das Dach")[1] == "für das Dach"


@given(MONEY, st.sampled_from(LOCALES))
def test_babel_formatted_numbers_read_back(value, locale):
    text = format_decimal(value, locale=locale)
    assert parse_amount(text, locale).value == value, text


@given(MONEY, st.sampled_from(LOCALES), st.sampled_from(["CHF", "EUR", "USD", "GBP"]))
def test_babel_formatted_money_reads_back_with_its_currency(value, locale, currency):
    text = format_currency(value, currency, locale=locale)
    assert parse_amount(text, locale) == (value, currency), text


@given(MONEY, st.sampled_from(LOCALES), st.sampled_from(LOCALES))
def test_a_number_written_in_one_locale_reads_the_same_in_another(value, written, read):
    """A partner whose settings say ``en`` but who writes ``12.000,50`` is understood."""
    text = format_decimal(value, locale=written, format="#,##0.00")
    assert parse_amount(text, read).value == value, (text, read)
