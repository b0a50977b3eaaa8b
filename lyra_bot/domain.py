"""Pure rules of the lead pool: states, entitlements, the teaser projection, deadlines.

Nothing here does I/O, so every rule can be tested without a database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from lyra_bot import amounts
from lyra_bot.amounts import Amount


class LeadStatus(StrEnum):
    HELD = "held"  # kept out of the pool until the owner approves (e.g. possible duplicate)
    OPEN = "open"
    CLAIMED = "claimed"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class ClaimState(StrEnum):
    ACTIVE = "active"  # awaiting feedback; counts against the partner's cap
    CLOSED = "closed"  # feedback given
    EXPIRED = "expired"  # deadline lapsed, lead back in the pool
    RELEASED = "released"  # partner gave the lead back
    WITHDRAWN = "withdrawn"  # owner withdrew the lead while it was held


class ExtensionStatus(StrEnum):
    PENDING = "pending"  # waiting for the owner
    APPROVED = "approved"  # by the owner, or at once by the tenant's policy (``auto``)
    DECLINED = "declined"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"
    CONTACTED = "contacted"
    NO_CONTACT = "no_contact"
    NOT_QUALIFIED = "not_qualified"
    DUPLICATE = "duplicate"


FINAL_OUTCOMES = frozenset(Outcome) - {Outcome.CONTACTED}
"""Outcomes that end the story of a lead; only ``contacted`` may be followed by another."""

LIVE_STATUSES = (LeadStatus.HELD, LeadStatus.OPEN, LeadStatus.CLAIMED)
TEASER_FIELDS = ("ref", "product", "region", "industry", "size", "need")
PRIVATE_FIELDS = ("company", "contact_name", "email", "phone", "address", "notes")
WILDCARD = "*"


class DomainError(Exception):
    """An error a user can cause; handlers turn it into a Reply, never a crash.

    It carries a code (the class) and data, no prose: ``phrase`` picks the sentence of
    ``lyra_bot.phrases`` when a code has several (``InvalidInput("bad_timezone", value=…)``).
    """

    code = "error"

    def __init__(self, phrase: str = "", /, **data: Any) -> None:
        self.data: dict[str, Any] = {"phrase": phrase, **data} if phrase else dict(data)
        super().__init__(phrase or self.code)

    @property
    def message(self) -> str:
        """The English sentence (logs, the API's ``message``); readers get ``phrases.say``."""
        from lyra_bot.phrases import say

        return say(self.code, self.data, "en")

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    code = "not_found"


class UnknownLead(NotFound):
    code = "unknown_lead"


class LeadTaken(DomainError):
    code = "lead_taken"


class AlreadyYours(DomainError):
    code = "already_yours"


class OverCap(DomainError):
    code = "over_cap"


class NotEntitled(DomainError):
    code = "not_entitled"


class NotYourLead(DomainError):
    code = "not_your_lead"


class InvalidInput(DomainError):
    code = "invalid_input"


class InvalidTransition(DomainError):
    code = "invalid_transition"


class Forbidden(DomainError):
    code = "forbidden"


class PartnerPaused(DomainError):
    """The tenant's reliability policy keeps this partner from claiming for a while."""

    code = "partner_paused"


class RateLimited(DomainError):
    """Too many requests or claims in a short time; ``retry_after`` says how long to wait."""

    code = "rate_limited"


class AlreadyAnswered(DomainError):
    code = "already_answered"


LAPSE_WINDOW = timedelta(days=30)
"""Lapses counted by the reliability policy (K lapses in this window pause a partner)."""


# --- entitlements -----------------------------------------------------------------------


def region_covers(entitled: str, region: str) -> bool:
    """``CH`` covers ``CH`` and ``CH-ZH`` (but not ``CHX``); ``*`` covers everything."""
    entitled, region = entitled.strip().upper(), region.strip().upper()
    if entitled == WILDCARD:
        return True
    return region == entitled or region.startswith(entitled + "-")


def is_entitled(products: Iterable[str], regions: Iterable[str], product: str, region: str) -> bool:
    """Whether a partner with these entitlements may see a lead of this product and region."""
    product_key = product.strip().casefold()
    product_ok = any(p == WILDCARD or p.strip().casefold() == product_key for p in products)
    return product_ok and any(region_covers(r, region) for r in regions)


def normalize_entitlements(values: Iterable[str], *, upper: bool) -> list[str]:
    """Trim, dedupe and case-normalise a list of products or regions, keeping order."""
    out: list[str] = []
    for value in values:
        value = value.strip()
        value = value.upper() if upper else value
        if value and value not in out:
            out.append(value)
    return out


# --- the teaser projection --------------------------------------------------------------


def teaser(lead: Any) -> dict[str, Any]:
    """The only view of a lead that may appear in a pool listing.

    A whitelist: any field added to Lead later stays private until it is added here.
    """
    return {field: getattr(lead, field) for field in TEASER_FIELDS}


def full_view(lead: Any) -> dict[str, Any]:
    """Teaser plus customer data: for the owner and for the partner holding the claim."""
    view = teaser(lead)
    view.update({field: getattr(lead, field) for field in PRIVATE_FIELDS})
    status = getattr(lead, "status", None)
    view["status"] = str(status) if status is not None else None
    return view


# --- references, amounts, deadlines -----------------------------------------------------

_REF_RE = re.compile(r"^\s*([A-Za-z]{1,6})\s*-?\s*(\d{1,9})\s*$")


REF_PREFIX = "L-"


def normalize_ref(raw: str, prefix: str = REF_PREFIX) -> str:
    """Accept ``l-1042``, ``L1042``, ``1042`` and return the canonical ``L-1042``."""
    text = raw.strip()
    if text.isdigit():
        return f"{prefix}{int(text)}"
    match = _REF_RE.match(text)
    if not match:
        raise InvalidInput("bad_ref", value=raw, example=f"{prefix}1042")
    return f"{match.group(1).upper()}-{int(match.group(2))}"


def parse_amount(
    raw: str | Decimal | int | float | None, locale: str | None = "en"
) -> Amount | None:
    """A non-negative amount in any channel's words (see ``lyra_bot.amounts``), with the
    currency it names, if any; ``None`` or empty means no amount."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, Decimal | int | float):
        raw = str(raw)
    try:
        return amounts.parse_amount(raw, locale)
    except amounts.AmountError:
        if raw.strip().startswith(("-", "−")):
            raise InvalidInput("negative_amount", value=raw) from None
        raise InvalidInput("not_an_amount", value=raw) from None


OUTCOME_WORDS: dict[str, Outcome] = {
    # en
    "won": Outcome.WON,
    "lost": Outcome.LOST,
    "contacted": Outcome.CONTACTED,
    "no_contact": Outcome.NO_CONTACT,
    "nocontact": Outcome.NO_CONTACT,
    "not_qualified": Outcome.NOT_QUALIFIED,
    "notqualified": Outcome.NOT_QUALIFIED,
    "duplicate": Outcome.DUPLICATE,
    # de
    "gewonnen": Outcome.WON,
    "verloren": Outcome.LOST,
    "kontaktiert": Outcome.CONTACTED,
    "kein_kontakt": Outcome.NO_CONTACT,
    "keinkontakt": Outcome.NO_CONTACT,
    "nicht_qualifiziert": Outcome.NOT_QUALIFIED,
    "nichtqualifiziert": Outcome.NOT_QUALIFIED,
    "duplikat": Outcome.DUPLICATE,
    # fr
    "gagné": Outcome.WON,
    "gagne": Outcome.WON,
    "perdu": Outcome.LOST,
    "contacté": Outcome.CONTACTED,
    "contacte": Outcome.CONTACTED,
    "pas_de_contact": Outcome.NO_CONTACT,
    "sans_contact": Outcome.NO_CONTACT,
    "non_qualifié": Outcome.NOT_QUALIFIED,
    "non_qualifie": Outcome.NOT_QUALIFIED,
    "doublon": Outcome.DUPLICATE,
}


def parse_outcome(raw: str) -> Outcome:
    """``won``, ``No-Contact``, ``gewonnen``, ``non qualifié`` … → an Outcome, or a clear error."""
    key = re.sub(r"[\s\-]+", "_", raw.strip().casefold())
    try:
        return OUTCOME_WORDS[key]
    except KeyError:
        raise InvalidInput("bad_outcome", value=raw, choices=[o.value for o in Outcome]) from None


def parse_currency(raw: str | None, default: str) -> str:
    code = (raw or default).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise InvalidInput("bad_currency", value=raw)
    return code


YES_WORDS = frozenset({"yes", "y", "ja", "j", "oui", "o", "si", "sí", "sì"})
NO_WORDS = frozenset({"no", "n", "nein", "non"})


def parse_yes_no(raw: str) -> bool:
    """``YES``/``NO``, also ``JA``/``NEIN`` and ``OUI``/``NON``; anything else is an error."""
    word = raw.strip().strip(".!").casefold()
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    raise InvalidInput("bad_yes_no", value=raw)


def phone_key(phone: str) -> str:
    """The digits of a phone number (at least six), for duplicate detection; else empty."""
    digits = re.sub(r"\D", "", phone or "")
    return digits if len(digits) >= 6 else ""


class TokenInvalid(DomainError):
    code = "token_invalid"


class TokenExpired(DomainError):
    code = "token_expired"


# --- validating leads -------------------------------------------------------------------

LEAD_FIELDS = (
    "ref",
    "product",
    "region",
    "industry",
    "size",
    "need",
    "company",
    "contact_name",
    "email",
    "phone",
    "address",
    "notes",
    "locale",
    "legal_basis",
    "consent_source",
    "consent_at",
    "legal_note",
)
_LIMITS = {
    "product": 100,
    "region": 32,
    "industry": 100,
    "size": 50,
    "need": 280,
    "company": 200,
    "contact_name": 200,
    "email": 254,
    "phone": 64,
    "address": 1000,
    "notes": 5000,
    "locale": 8,
    "legal_basis": 24,
    "consent_source": 200,
    "consent_at": 40,
    "legal_note": 500,
}
FIELD_LIMITS = _LIMITS
_MULTILINE = {"address", "notes"}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_REGION_RE = re.compile(r"^(\*|[A-Z0-9]{2,8}(-[A-Z0-9]{1,8})*)$")
_EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")


@lru_cache(maxsize=1024)
def known_region(code: str) -> bool:
    """``*``, an ISO 3166-1 country (``CH``) or an ISO 3166-2 subdivision (``CH-ZH``), which an
    owner may divide further (``CH-ZH-WIN``): a lead in "Narnia" would reach nobody."""
    import pycountry  # its tables load on first use; most processes never validate a lead

    if code == "*":
        return True
    country, *parts = code.split("-")
    if pycountry.countries.get(alpha_2=country) is None:
        return False
    return not parts or pycountry.subdivisions.get(code=f"{country}-{parts[0]}") is not None


def clean_lead(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise one lead's fields; raise ``InvalidInput`` naming every problem.

    Single-line fields have their whitespace (CR/LF included) collapsed; emails are
    lower-cased; regions upper-cased.
    """
    problems: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for name in LEAD_FIELDS:
        value = raw.get(name)
        value = "" if value is None else str(value)
        # Control characters (NUL …) and lone surrogates cannot be stored or mailed: drop them.
        value = _CONTROL_RE.sub("", value)
        value = value.strip() if name in _MULTILINE else " ".join(value.split())
        if len(value) > _LIMITS.get(name, 32):
            problems.append({"phrase": "too_long", "field": name, "max": _LIMITS.get(name, 32)})
        out[name] = value
    unknown = sorted(set(raw) - set(LEAD_FIELDS) - {"source"})
    if unknown:
        problems.append({"phrase": "unknown_fields", "field": unknown[0], "fields": unknown})
    if not out["product"]:
        problems.append({"phrase": "missing_field", "field": "product"})
    out["region"] = out["region"].upper()
    if not out["region"]:
        problems.append({"phrase": "missing_field", "field": "region"})
    elif not _REGION_RE.match(out["region"]) or not known_region(out["region"]):
        problems.append({"phrase": "bad_region", "field": "region", "value": out["region"]})
    out["email"] = out["email"].lower()
    if out["email"] and not _EMAIL_RE.match(out["email"]):
        problems.append({"phrase": "bad_lead_email", "field": "email", "value": out["email"]})
    if out["ref"]:
        try:
            out["ref"] = normalize_ref(out["ref"])
        except InvalidInput as exc:
            problems.append({**exc.data, "field": "ref"})
    if out["locale"] and language(out["locale"]) is None:
        problems.append(
            {
                "phrase": "bad_lead_locale",
                "field": "locale",
                "value": out["locale"],
                "choices": list(LANGUAGES),
            }
        )
    out["locale"] = language(out["locale"])
    problems += _clean_legal_basis(out)
    if problems:
        raise InvalidInput("lead_invalid", problems=problems)
    return out


class LegalBasis(StrEnum):
    """Why a customer may be contacted (Swiss nDSG / EU GDPR)."""

    CONSENT = "consent"  # with its source and time
    LEGITIMATE_INTEREST = "legitimate_interest"  # with a note saying which


def _clean_legal_basis(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalise the legal-basis fields of a cleaned lead in place; return the problems."""
    basis = out["legal_basis"].casefold().replace("-", "_").replace(" ", "_")
    basis = {"li": LegalBasis.LEGITIMATE_INTEREST.value}.get(basis, basis)
    out["consent_at"] = out["consent_at"] or None
    problems: list[dict[str, Any]] = []
    if out["consent_at"]:  # parsed whatever the basis: the column holds a date-time
        try:
            out["consent_at"] = parse_when(out["consent_at"]).astimezone(UTC)
        except (ValueError, OverflowError):
            problems.append(
                {"phrase": "bad_consent_at", "field": "consent_at", "value": out["consent_at"]}
            )
    if not basis:
        out["legal_basis"] = ""
        return problems
    if basis not in set(LegalBasis):
        bad = {"phrase": "bad_legal_basis", "field": "legal_basis", "value": out["legal_basis"]}
        return [*problems, bad]
    out["legal_basis"] = basis
    if basis == LegalBasis.CONSENT:
        if not out["consent_source"]:
            problems.append(
                {"phrase": "consent_needs", "field": "consent_source", "fields": ["consent_source"]}
            )
        if not out["consent_at"]:
            problems.append(
                {"phrase": "consent_needs", "field": "consent_at", "fields": ["consent_at"]}
            )
        return problems
    if not out["legal_note"]:
        problems.append({"phrase": "interest_needs", "field": "legal_note"})
    return problems


def parse_when(raw: str | datetime) -> datetime:
    """An ISO date or date-time; naive values are taken as UTC."""
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw).strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- whose language ---------------------------------------------------------------------

LANGUAGES = ("de", "fr", "it", "en")  # the same as lyra_bot.i18n.LOCALES (a test checks)

# Swiss cantons by official language; the bilingual and trilingual ones list the majority's
# language first (it is used when the tenant's own language is not one of theirs).
CANTON_LANGUAGES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("ZH", "LU", "UR", "SZ", "OW", "NW", "GL", "ZG", "SO", "BS", "BL", "SH", "AR", "AI"),
        ("de",),
    ),
    **dict.fromkeys(("SG", "AG", "TG"), ("de",)),
    **dict.fromkeys(("GE", "VD", "NE", "JU"), ("fr",)),
    "TI": ("it",),
    "BE": ("de", "fr"),
    "FR": ("fr", "de"),
    "VS": ("fr", "de"),
    "GR": ("de", "it"),
}
# Countries by their main language, where Lyra speaks it; others get the tenant's language.
COUNTRY_LANGUAGE: dict[str, str] = {
    **dict.fromkeys(("DE", "AT", "LI"), "de"),
    **dict.fromkeys(("FR", "MC"), "fr"),
    **dict.fromkeys(("IT", "SM", "VA"), "it"),
    **dict.fromkeys(("GB", "IE", "US", "CA", "AU", "NZ"), "en"),
}


def language(value: str | None) -> str | None:
    """``de-CH``, ``fr_CH``, ``IT`` → the supported language it names, else None."""
    short = (value or "").replace("_", "-").split("-")[0].strip().lower()
    return short if short in LANGUAGES else None


def customer_language(lead_locale: str | None, region: str, tenant_locale: str | None) -> str:
    """The language to write to a customer in: the lead's own (given at intake), else the
    one spoken in the lead's region, never blindly the tenant's (a customer in Zürich gets
    German from a French-speaking tenant). Bilingual cantons get the tenant's language when
    it is one of theirs, else the majority's; a region Lyra cannot place, the tenant's."""
    own = language(lead_locale)
    if own:
        return own
    tenant = language(tenant_locale) or "en"
    country, _, rest = (region or "").strip().upper().partition("-")
    if country == "CH":
        spoken = CANTON_LANGUAGES.get(rest.split("-")[0])
        if spoken:
            return tenant if tenant in spoken else spoken[0]
        return tenant
    return COUNTRY_LANGUAGE.get(country, tenant)
