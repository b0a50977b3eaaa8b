"""Jinja2 over ``templates/``: mails as subject + plain text + HTML, in the reader's language.

One template per message kind (``email/<kind>.{subject,txt,html}.j2``, ``web/<page>.html.j2``);
its words come from the gettext catalogs (``jinja2.ext.i18n``, newstyle: ``{{ _("…") }}`` and
``{% trans %}`` are escaped like any other value). Each locale has its own environment, so a
template renders with that locale's catalog and formatting filters and no render can see
another's language. Dates, amounts and outcome codes reach templates raw and are formatted
there by filters, in the reader's locale and the tenant's time zone (``tz`` in the context):
one context serves owner, partner and customer, each in their own language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_skeleton, format_time, get_datetime_format
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    pass_context,
)
from jinja2.runtime import Context
from markupsafe import Markup

from lyra_bot import i18n
from lyra_bot.i18n import DEFAULT_LOCALE, LOCALES, pick_locale

__all__ = ["LOCALES", "PARTS", "RenderedMail", "Renderer", "one_line", "pick_locale"]

PARTS = ("subject", "txt", "html")


def N_(text: str) -> str:
    return text


# Codes as the reader says them: extracted into the "mail" domain (babel-mail.cfg).
OUTCOME_WORDS: dict[str, str] = {
    "won": N_("sale won"),
    "lost": N_("no sale"),
    "contacted": N_("customer contacted, no decision yet"),
    "no_contact": N_("customer not reached"),
    "not_qualified": N_("not a real enquiry"),
    "duplicate": N_("duplicate enquiry"),
}
CHANNEL_WORDS: dict[str, str] = {"email": N_("email"), "slack": N_("Slack")}
BOUNCE_WORDS: dict[str, str] = {"hard": N_("permanent failure"), "soft": N_("temporary failure")}
LABEL = N_("%(label)s:")  # French puts a space before the colon: "%(label)s :"
KIND_WORDS: dict[str, str] = {  # the first part of an outbox kind: "claim.customer" → claim
    "claim": N_("claim notice"),
    "feedback": N_("feedback notice"),
    "lapse": N_("lapse notice"),
    "release": N_("lead given back"),
    "withdraw": N_("lead withdrawn"),
    "reminder": N_("reminder"),
    "extension": N_("extension"),
    "contact_check": N_("contact check"),
    "digest": N_("digest"),
    "answer": N_("answer to a reply"),
    "paused": N_("claiming paused"),
    "stale": N_("unclaimed leads"),
    "report": N_("weekly report"),
    "customer": N_("customer's reply"),
    "bounce": N_("bounce notice"),
    "outbox": N_("delivery failure"),
    "slack": N_("Slack message"),
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def local_time(timezone: str, when: datetime | str | None) -> str:
    """A stored UTC time (or its ISO text in reply data) in the tenant's time zone."""
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def mailto(address: str, command: str) -> str:
    """A link that opens a reply with ``command`` in subject and body, ready to send."""
    encoded = quote(command)
    return f"mailto:{address}?subject={encoded}&body={encoded}"


def one_line(value: Any) -> str:
    """Collapse whitespace, CR and LF: for subjects and anything that may end up in a header."""
    return " ".join(str(value).split())


def slack_escape(value: Any) -> Any:
    """Escape what Slack's mrkdwn treats as markup (``<@U1>``, ``<!channel>``, links)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def _moment(value: Any) -> datetime | date | None:
    """Datetimes pass; ISO strings (contexts that went through JSON) are read back."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str) and value[:4].isdigit():
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _cmd(text: Any) -> Markup:
    """A command the reader may type, set apart in HTML (escaped like any value)."""
    return Markup('<span class="cmd">%s</span>') % text


def _strong(text: Any) -> Markup:
    return Markup("<strong>%s</strong>") % text


def _link(url: Any, text: Any) -> Markup:
    return Markup('<a href="%s">%s</a>') % (url, text)


def format_moment(when: datetime, locale: Locale, tz: str | None) -> str:
    """A deadline as people write it: weekday, date and time in the tenant's zone
    (``Do., 12. Nov. 2026, 10:00``, ``jeu. 12 nov. 2026, 10:00``)."""
    zone = i18n._zone(tz)
    if zone is not None and when.tzinfo is not None:
        when = when.astimezone(zone)
    day = format_skeleton("yMMMEd", when, locale=locale)
    clock = format_time(when, "short", locale=locale)
    return str(get_datetime_format("medium", locale=locale)).format(clock, day)


class Words:
    """The formatting filters of one locale: what a reader of ``lang`` expects to see."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.locale = i18n.babel_locale(lang, "CH")
        self.gettext = i18n.translations(lang).ugettext

    def datetime(self, context: Context, value: Any) -> str:
        """``Do., 12. Nov. 2026, 10:00`` in the tenant's zone; text that is no date passes."""
        when = _moment(value)
        if when is None:
            return "" if value is None else str(value)
        if not isinstance(when, datetime):
            return self.date(context, when)
        return format_moment(when, self.locale, context.get("tz"))

    def date(self, context: Context, value: Any) -> str:
        when = _moment(value)
        if when is None:
            return "" if value is None else str(value)
        if isinstance(when, datetime):
            zone = i18n._zone(context.get("tz"))
            if zone is not None and when.tzinfo is not None:
                when = when.astimezone(zone)
        return format_skeleton("yMMMd", when, locale=self.locale)

    def money(self, amount: Any, currency: str | None) -> str:
        if amount in (None, ""):
            return ""
        try:
            return i18n.format_money(Decimal(str(amount)), currency or "CHF", self.locale)
        except (InvalidOperation, ValueError):
            return f"{amount} {currency or ''}".strip()

    def number(self, value: Any) -> str:
        return "" if value is None else i18n.format_number(value, self.locale)

    def word(self, table: dict[str, str], code: Any) -> str:
        """A code in the reader's words; an unknown code shows as it is (never hidden)."""
        phrase = table.get(str(code))
        return self.gettext(phrase) if phrase else str(code or "")


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._envs: dict[str, Environment] = {}
        self._slack_envs: dict[str, Environment] = {}

    @property
    def slack_env(self) -> Environment:
        return self.slack_environment(DEFAULT_LOCALE)

    def slack_environment(self, locale: str | None) -> Environment:
        """Slack messages: every {{ value }} is escaped for mrkdwn, as HTML is for mail."""
        lang = pick_locale(locale)
        env = self._slack_envs.get(lang)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(str(self.templates_dir)),
                autoescape=False,
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                finalize=slack_escape,
            )
            self._add_filters(env, Words(lang))
            self._slack_envs[lang] = env
        return env

    @cached_property
    def env(self) -> Environment:
        """The English environment (kept for callers that render a template directly)."""
        return self.environment(DEFAULT_LOCALE)

    def environment(self, locale: str | None) -> Environment:
        lang = pick_locale(locale)
        env = self._envs.get(lang)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(str(self.templates_dir)),
                autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                extensions=["jinja2.ext.i18n"],
            )
            env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
            env.filters["one_line"] = one_line
            env.globals.update(cmd=_cmd, strong=_strong, link=_link, plain=str)
            self._add_filters(env, Words(lang))
            self._envs[lang] = env
        return env

    @staticmethod
    def _add_filters(env: Environment, words: Words) -> None:
        env.filters["datetime"] = pass_context(lambda ctx, value: words.datetime(ctx, value))
        env.filters["date"] = pass_context(lambda ctx, value: words.date(ctx, value))
        env.filters["money"] = words.money
        env.filters["number"] = words.number
        env.filters["outcome"] = lambda code: words.word(OUTCOME_WORDS, code)
        env.filters["channel"] = lambda code: words.word(CHANNEL_WORDS, code)
        env.filters["bounce"] = lambda code: words.word(BOUNCE_WORDS, code)
        env.globals["colon"] = lambda label: words.gettext(LABEL) % {"label": label}
        env.filters["mail_kind"] = lambda kind: words.word(
            KIND_WORDS, str(kind or "").split(".")[0]
        )

    def mail(self, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMail:
        """Render ``email/<name>.{subject,txt,html}.j2`` in the reader's language."""
        lang = pick_locale(locale)
        context = {**context, "locale": lang}
        subject, text, html = (
            self._template(lang, "email", f"{name}.{part}.j2").render(context) for part in PARTS
        )
        return RenderedMail(one_line(subject), text, html)

    def slack(self, name: str, locale: str | None, context: dict[str, Any]) -> str:
        """Render ``slack/<locale>/<name>.txt.j2`` (mrkdwn), falling back to English."""
        env = self.slack_environment(locale)
        template = self._localized(env, "slack", f"{name}.txt.j2", locale)
        return template.render({**context, "locale": pick_locale(locale)}).strip()

    def page(self, name: str, locale: str | None, context: dict[str, Any]) -> str:
        """Render the web page ``web/<name>.html.j2`` (HTML-escaped) in the reader's language."""
        lang = pick_locale(locale)
        return self._template(lang, "web", f"{name}.html.j2").render({**context, "locale": lang})

    def _template(self, lang: str, folder: str, name: str) -> Template:
        """The one template of a kind; a kind still kept per language folder falls back to it."""
        env = self.environment(lang)
        try:
            return env.get_template(f"{folder}/{name}")
        except TemplateNotFound:
            return self._localized(env, folder, name, lang)

    @staticmethod
    def _localized(env: Environment, folder: str, name: str, locale: str | None) -> Template:
        for loc in dict.fromkeys((pick_locale(locale), DEFAULT_LOCALE)):
            try:
                return env.get_template(f"{folder}/{loc}/{name}")
            except TemplateNotFound:
                continue
        raise TemplateNotFound(f"{folder}/*/{name}")
