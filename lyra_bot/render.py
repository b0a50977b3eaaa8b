"""Jinja2 over ``templates/``: mails as subject + plain text + HTML, in the reader's locale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound

LOCALES = ("de", "fr", "en")
DEFAULT_LOCALE = "en"
PARTS = ("subject", "txt", "html")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def pick_locale(*candidates: str | None) -> str:
    """The first supported locale among the candidates (``de-CH`` counts as ``de``), else en."""
    for candidate in candidates:
        if candidate:
            short = candidate.replace("_", "-").split("-")[0].lower()
            if short in LOCALES:
                return short
    return DEFAULT_LOCALE


def one_line(value: Any) -> str:
    """Collapse whitespace, CR and LF: for subjects and anything that may end up in a header."""
    return " ".join(str(value).split())


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

    def mail(self, name: str, locale: str | None, context: dict[str, Any]) -> RenderedMail:
        """Render ``email/<locale>/<name>.{subject,txt,html}.j2``, falling back to English."""
        locale = pick_locale(locale)
        subject, text, html = (
            self._localized("email", name, f"{part}.j2", locale).render(
                {**context, "locale": locale}
            )
            for part in PARTS
        )
        return RenderedMail(one_line(subject), text, html)

    def page(self, name: str, locale: str | None, context: dict[str, Any]) -> str:
        """Render the web page ``web/<locale>/<name>.html.j2``, falling back to English."""
        locale = pick_locale(locale)
        return self._localized("web", name, "html.j2", locale).render({**context, "locale": locale})

    def _localized(self, area: str, name: str, suffix: str, locale: str) -> Template:
        for loc in dict.fromkeys((locale, DEFAULT_LOCALE)):
            try:
                return self.env.get_template(f"{area}/{loc}/{name}.{suffix}")
            except TemplateNotFound:
                continue
        raise TemplateNotFound(f"{area}/*/{name}.{suffix}")
