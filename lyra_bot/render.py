"""Jinja2 over ``templates/``: mails as subject + plain text + HTML, in the reader's locale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound

from lyra_bot.i18n import DEFAULT_LOCALE, pick_locale

LOCALES = ("de", "fr", "en")  # template folders, until one template per kind uses gettext

PARTS = ("subject", "txt", "html")


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


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["one_line"] = one_line
        # Slack messages: every {{ value }} is escaped for mrkdwn, as HTML is for mail.
        self.slack_env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=False,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=slack_escape,
        )

    def mail(self, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMail:
        """Render ``email/<locale>/<name>.{subject,txt,html}.j2``, falling back to English."""
        context = {**context, "locale": pick_locale(locale)}
        subject, text, html = (
            self._localized(self.env, "email", f"{name}.{part}.j2", locale).render(context)
            for part in PARTS
        )
        return RenderedMail(one_line(subject), text, html)

    def slack(self, name: str, locale: str | None, context: dict[str, Any]) -> str:
        """Render ``slack/<locale>/<name>.txt.j2`` (mrkdwn), falling back to English."""
        template = self._localized(self.slack_env, "slack", f"{name}.txt.j2", locale)
        return template.render({**context, "locale": pick_locale(locale)}).strip()

    def page(self, name: str, locale: str | None, context: dict[str, Any]) -> str:
        """Render the web page ``web/<locale>/<name>.html.j2`` (HTML-escaped)."""
        template = self._localized(self.env, "web", f"{name}.html.j2", locale)
        return template.render({**context, "locale": pick_locale(locale)})

    @staticmethod
    def _localized(env: Environment, folder: str, name: str, locale: str | None) -> Template:
        for loc in dict.fromkeys((pick_locale(locale), DEFAULT_LOCALE)):
            try:
                return env.get_template(f"{folder}/{loc}/{name}")
            except TemplateNotFound:
                continue
        raise TemplateNotFound(f"{folder}/*/{name}")
