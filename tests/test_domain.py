"""Pure rules: entitlements, references, amounts, outcomes, lead validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra_bot.domain import (
    InvalidInput,
    Outcome,
    clean_lead,
    is_entitled,
    normalize_ref,
    parse_amount,
    parse_outcome,
    phone_key,
    region_covers,
)


@pytest.mark.parametrize(
    ("entitled", "region", "expected"),
    [
        ("CH", "CH", True),
        ("CH", "CH-ZH", True),
        ("ch", "CH-ZH-WIN", True),
        ("CH", "CHX", False),
        ("CH-ZH", "CH", False),
        ("CH-ZH", "CH-ZG", False),
        ("*", "DE-BY", True),
    ],
)
def test_region_prefixes(entitled, region, expected):
    assert region_covers(entitled, region) is expected


def test_entitlement_needs_product_and_region():
    assert is_entitled(["Firewall"], ["CH"], "firewall", "CH-ZH")
    assert not is_entitled(["Firewall"], ["CH"], "VPN", "CH-ZH")
    assert not is_entitled(["Firewall"], ["DE"], "Firewall", "CH-ZH")
    assert is_entitled(["*"], ["*"], "Anything", "XX")
    assert not is_entitled([], ["CH"], "Firewall", "CH")


@pytest.mark.parametrize("raw", ["L-1042", "l-1042", "L1042", " l 1042 ", "1042", "L-01042"])
def test_refs_normalise(raw):
    assert normalize_ref(raw) == "L-1042"


@pytest.mark.parametrize("raw", ["", "L-", "hello world", "L-12a", "1042-L"])
def test_bad_refs_are_refused(raw):
    with pytest.raises(InvalidInput):
        normalize_ref(raw)


def test_amounts():
    assert parse_amount("12000") == (Decimal("12000.00"), None)
    assert parse_amount("12'000 CHF", "de") == (Decimal("12000.00"), "CHF")
    assert parse_amount(Decimal("12.5")) == (Decimal("12.50"), None)
    assert parse_amount(None) is None and parse_amount("") is None
    for bad in ("-1", "abc", "NaN", "Infinity"):
        with pytest.raises(InvalidInput):
            parse_amount(bad)


@pytest.mark.parametrize(
    ("word", "outcome"),
    [
        ("WON", Outcome.WON),
        ("No-Contact", Outcome.NO_CONTACT),
        ("not qualified", Outcome.NOT_QUALIFIED),
        ("gewonnen", Outcome.WON),
        ("Kein Kontakt", Outcome.NO_CONTACT),
        ("non qualifié", Outcome.NOT_QUALIFIED),
        ("doublon", Outcome.DUPLICATE),
        ("perdu", Outcome.LOST),
    ],
)
def test_outcome_words_in_three_languages(word, outcome):
    assert parse_outcome(word) is outcome


def test_clean_lead_reports_every_problem_at_once():
    with pytest.raises(InvalidInput) as err:
        clean_lead({"product": "", "region": "Zürich", "email": "x@", "colour": "red"})
    problems = err.value.data["problems"]
    assert sorted(p["field"] for p in problems) == ["colour", "email", "product", "region"]
    assert "unknown fields: colour" in err.value.message and "product is missing" in str(err.value)
    lead = clean_lead(
        {"product": " VPN ", "region": "ch-zh", "need": "a\r\nb", "address": "Line 1\nLine 2"}
    )
    assert (lead["product"], lead["region"], lead["need"], lead["address"]) == (
        "VPN",
        "CH-ZH",
        "a b",
        "Line 1\nLine 2",
    )


def test_phone_key_keeps_digits_of_real_numbers_only():
    assert phone_key("+41 (44) 555-01 01") == "41445550101"
    assert phone_key("12") == ""


@pytest.mark.parametrize(
    ("lead_locale", "region", "tenant", "expected"),
    [
        ("it", "CH-ZH", "de", "it"),  # the lead's own language wins
        ("fr-CH", "CH-ZH", "de", "fr"),
        ("es", "CH-ZH", "fr", "de"),  # unsupported own language: from the region
        (None, "CH-ZH", "fr", "de"),  # Zürich reads German, even from a French tenant
        (None, "CH-GE", "de", "fr"),
        (None, "CH-VD", "de", "fr"),
        (None, "CH-NE", "it", "fr"),
        (None, "CH-JU", "en", "fr"),
        (None, "CH-TI", "de", "it"),
        (None, "CH-BE", "fr", "fr"),  # bilingual: the tenant's language where it is spoken
        (None, "CH-BE", "de", "de"),
        (None, "CH-BE", "it", "de"),  # … else the majority's
        (None, "CH-FR", "de", "de"),
        (None, "CH-FR", "en", "fr"),
        (None, "CH-VS", "de", "de"),
        (None, "CH-VS", "it", "fr"),
        (None, "CH", "it", "it"),  # the whole country: the tenant's
        (None, "CH-XX", "fr", "fr"),
        (None, "DE-BY", "fr", "de"),
        (None, "AT", "fr", "de"),
        (None, "FR-75", "de", "fr"),
        (None, "IT", "de", "it"),
        (None, "GB", "de", "en"),
        (None, "ES", "fr", "fr"),  # a language Lyra does not speak: the tenant's
        (None, "*", "it", "it"),
        (None, "CH-ZH", None, "de"),
        (None, "ES", None, "en"),
    ],
)
def test_customer_language(lead_locale, region, tenant, expected):
    from lyra_bot.domain import customer_language

    assert customer_language(lead_locale, region, tenant) == expected


def test_languages_are_the_catalog_locales():
    from lyra_bot.domain import LANGUAGES
    from lyra_bot.i18n import LOCALES

    assert set(LANGUAGES) == set(LOCALES)


def test_lead_locale_must_be_a_supported_language():
    from lyra_bot.domain import clean_lead

    assert clean_lead({"product": "P", "region": "CH", "locale": "IT"})["locale"] == "it"
    assert clean_lead({"product": "P", "region": "CH", "locale": "de-CH"})["locale"] == "de"
    with pytest.raises(InvalidInput, match="locale 'xx'"):
        clean_lead({"product": "P", "region": "CH", "locale": "xx"})
