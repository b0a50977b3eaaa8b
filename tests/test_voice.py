"""One voice in four languages: the whole demo, run in each language, has no English in
German, French or Italian mails, and no raw codes, "(s)" plurals or ISO timestamps in any."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from lyra_bot.i18n import LOCALES
from tests.cli_helpers import cli, lyra_env
from tests.voice import html_text, mail_texts, voice_problems

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"


@pytest.mark.parametrize("locale", LOCALES)
def test_the_demo_speaks_its_reader_s_language(tmp_path, locale):
    env = lyra_env(f"sqlite://{tmp_path / 'unused.db'}", tmp_path)
    mails_dir = tmp_path / "mails"
    cli(env, "demo", "--locale", locale, "--database", str(tmp_path / "demo.db"),
        "--outbox-dir", str(mails_dir))  # fmt: skip
    mails = sorted(mails_dir.rglob("*.eml"))
    assert len(mails) == 18
    problems = {}
    for path in mails:
        raw = path.read_bytes()
        to = str(BytesParser(policy=policy.default).parsebytes(raw)["To"])
        # Owner and partners read the demo's language; each customer their region's.
        reader = locale if "-customer" not in path.name else _customer_language(to)
        for part, text in mail_texts(raw).items():
            found = voice_problems(text, reader)
            if found:
                problems[f"{path.name} {part}"] = found
    assert problems == {}


def _customer_language(address: str) -> str:
    # The demo's customers: Zürich and Bern read German, Geneva French.
    return "fr" if "boutiques-lac" in address else "de"


@pytest.mark.parametrize(
    ("text", "locale", "problem"),
    [
        ("Rückmeldung won erfasst", "de", "raw code 'won'"),
        ("L-1002 : Alpine signale won", "fr", "raw code 'won'"),
        ("outcome no_contact", "en", "raw code 'no_contact'"),
        ("1 lapses, 7 jour(s)", "fr", "(s) plural 'r(s)'"),
        ("1 claim(s) lapsed", "en", "(s) plural 'm(s)'"),
        ("fällig 2026-11-12 10:00 CET", "de", "ISO timestamp '2026-11-12 10:00'"),
        ("Rapport 2026-W45", "fr", "ISO timestamp '2026-W45'"),
        ("Bitte antworten Sie, please reply", "de", "English word 'please'"),
        ("kind claim.partner", "it", "raw code 'claim.partner'"),
    ],
)
def test_the_voice_check_catches_machine_talk(text, locale, problem):
    assert problem in voice_problems(text, locale)


def test_links_addresses_and_loanwords_are_not_machine_talk():
    text = (
        "Guten Tag Mia, der Lead L-1001 ist wieder im Pool. Partner: Alpine. "
        "mailto:leads+x@lyra.test?subject=CLAIM%20L-1001 https://acme.example/the-privacy "
        "mia@alpine.example, fällig am Do., 12. Nov. 2026, 10:00"
    )
    assert voice_problems(text, "de") == []
    assert voice_problems("The lead was won: sale won.", "en") == []


def test_the_gallery_shows_every_mail_kind_in_every_language_in_its_words(tmp_path):
    env = lyra_env(f"sqlite://{tmp_path / 'unused.db'}", tmp_path)
    cli(env, "gallery", str(tmp_path / "gallery"))
    kinds = {p.name.removesuffix(".subject.j2") for p in TEMPLATES.glob("*.subject.j2")}
    for locale in LOCALES:
        folder = tmp_path / "gallery" / locale
        assert {p.name.removesuffix(".subject.txt") for p in folder.glob("*.subject.txt")} == kinds
        problems = {}
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".txt", ".html"):
                continue
            text = path.read_text(encoding="utf-8")
            found = voice_problems(html_text(text) if path.suffix == ".html" else text, locale)
            if found:
                problems[path.name] = found
        assert problems == {}, locale
    chart = tmp_path / "gallery" / "it" / "owner_report.chart.png"
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert 'src="owner_report.chart.png"' in (chart.parent / "owner_report.html").read_text()
