"""The message catalogs are complete and current: every msgid of the mail and web templates
(domain ``mail``) and of the reply phrases, Slack and CLI (domain ``messages``) has a
finished translation in de, fr and it, and no catalog lags behind its sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from lyra_bot.i18n import DOMAINS, LOCALE_DIR, LOCALES

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = [lang for lang in LOCALES if lang != "en"]


def _catalog(lang: str, domain: str):
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    with path.open("rb") as po:
        return read_po(po, locale=lang, domain=domain)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(lang, domain):
    catalog = _catalog(lang, domain)
    assert len(catalog) > 0
    assert unfinished(catalog) == [], f"{lang}/{domain}.po"


def unfinished(catalog) -> list[str]:
    """Entries a reader would see in English: untranslated (any plural form), fuzzy, obsolete."""
    found = []
    for m in catalog:
        if not m.id:
            continue
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(forms):
            found.append(f"untranslated: {m.id}")
        if m.fuzzy:
            found.append(f"fuzzy: {m.id}")
    return found + [f"obsolete: {key}" for key in catalog.obsolete]


@pytest.mark.parametrize("domain", DOMAINS)
def test_catalogs_match_their_sources(domain, tmp_path):
    """Re-extract the sources: a msgid added, changed or removed there and not in every
    catalog (``pybabel update``) fails here."""
    catalogs = {lang: _catalog(lang, domain) for lang in TRANSLATED}
    pot = tmp_path / f"{domain}.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract",
         "-F", f"babel-{domain}.cfg", "-o", str(pot), "."],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    with pot.open("rb") as f:
        sources = _ids(read_po(f))
    assert sources, f"nothing extracted for {domain}"
    for lang, catalog in catalogs.items():
        ids = _ids(catalog)
        assert sorted(map(str, sources - ids)) == [], f"{lang}/{domain}.po lacks these"
        assert sorted(map(str, ids - sources)) == [], f"{lang}/{domain}.po has stale msgids"


def test_a_fuzzy_or_missing_translation_is_caught(tmp_path):
    """The check above can fail: a catalog with a fuzzy and an empty entry is reported."""
    po = tmp_path / "x.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        '#, fuzzy\nmsgid "Hello"\nmsgstr "Hallo"\n\nmsgid "Bye"\nmsgstr ""\n\n'
        'msgid "Day"\nmsgid_plural "Days"\nmsgstr[0] "Tag"\nmsgstr[1] ""\n',
        encoding="utf-8",
    )
    with po.open("rb") as f:
        catalog = read_po(f, locale="de")
    assert unfinished(catalog) == [
        "fuzzy: Hello",
        "untranslated: Bye",
        "untranslated: ('Day', 'Days')",
    ]
