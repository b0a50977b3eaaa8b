"""Reading replies: the corpus of real-looking mails, the grammar, and a property test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lyra_bot.adapters.email.grammar import parse_amount, parse_line, parse_lines
from lyra_bot.adapters.email.parsing import read_mail, unflow
from lyra_bot.adapters.email.processing import commands_of
from lyra_bot.adapters.email.quotes import split_reply

CORPUS = Path(__file__).parent / "email_corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
OWN = frozenset({"lyra@lyra.test", "leads@lyra.test"})
MACHINE = {"auto_reply", "bounce", "receipt", "own", "list"}


def test_corpus_is_big_and_every_file_has_an_expectation():
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert len(files) >= 40
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_mail_yields_exactly_the_expected_commands(name):
    case = EXPECTED[name]
    parsed = read_mail((CORPUS / name).read_bytes(), OWN)
    if case["outcome"] in MACHINE:
        assert parsed.machine == case["outcome"], parsed.machine_reason
        assert parsed.text == ""  # machine mail is never read for commands
        return
    assert parsed.machine is None, parsed.machine_reason
    if case["outcome"] == "unsure":  # a command lies in doubt: the whole mail waits
        assert any(p.command for p in parse_lines(parsed.doubtful, case["lead"]))
        return
    if case["commands"] is None:
        return
    found = [p.describe() for p in commands_of(parsed, case["lead"])]
    assert found == case["commands"], parsed.text
    if case["outcome"] == "quoted_only":
        assert any(p.command for p in parse_lines(parsed.quoted, case["lead"]))


def test_hard_bounce_names_the_failed_recipient_and_our_message():
    parsed = read_mail((CORPUS / "bounce_hard_with_digest.eml").read_bytes(), OWN)
    assert parsed.bounce is not None and parsed.bounce.hard
    assert parsed.bounce.recipients == ["max@alpine.example"]
    assert parsed.bounce.status == "5.1.1"
    assert parsed.bounce.original_id == "BOUNCED_DIGEST_ID" or parsed.bounce.original_id == ""
    delayed = read_mail((CORPUS / "bounce_delayed_4xx.eml").read_bytes(), OWN)
    assert delayed.bounce is not None and not delayed.bounce.hard


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("claim l-1042", ["ClaimLead L-1042"]),
        ("Claim: L-1042.", ["ClaimLead L-1042"]),
        ("CLAIM L1042", ["ClaimLead L-1042"]),
        ("**ÜBERNEHMEN** L\u20111042", ["ClaimLead L-1042"]),
        ("Prendre L-1042, L-1043 et L-1044", [f"ClaimLead L-{n}" for n in (1042, 1043, 1044)]),
        ("GAGNÉ L-1042 12 000 Fr.", ["GiveFeedback L-1042 won 12000.00 CHF"]),
        ("won L-1042 12,5k", ["GiveFeedback L-1042 won 12500.00"]),
        ("WON L-1042 12'000.-", ["GiveFeedback L-1042 won 12000.00"]),
        ("lost L-1042", ["error:missing_reason"]),
        ("won L-1042", ["error:missing_amount"]),
        ("won L-1042 12x000", ["error:bad_amount"]),
        ("won 12000", ["error:missing_ref"]),
        ("No-Contact L-1042", ["GiveFeedback L-1042 no_contact"]),
        ("kein Kontakt L-1042", ["GiveFeedback L-1042 no_contact"]),
        ("non qualifié L-1042", ["GiveFeedback L-1042 not_qualified"]),
        ("Stop by our booth next week", []),
        ("Leads for you", []),
        ("Thanks for L-1042!", []),
        ("Claimed L-1042", ["error:unknown_command"]),
    ],
)
def test_grammar(line, expected):
    assert [p.describe() for p in parse_line(line)] == expected


def test_a_lead_bound_reply_may_leave_out_the_reference():
    assert [p.describe() for p in parse_line("won 12000", "L-7")] == [
        "GiveFeedback L-7 won 12000.00"
    ]
    assert [p.describe() for p in parse_line("WON L-9 5000", "L-7")] == [
        "GiveFeedback L-9 won 5000.00"
    ]


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("12000", "12000.00", None),
        ("12'000", "12000.00", None),
        ("12.000 €", "12000.00", "EUR"),
        ("12,000 EUR", "12000.00", "EUR"),
        ("12k", "12000.00", None),
        ("CHF 1'234.50", "1234.50", "CHF"),
        ("$ 99.99", "99.99", "USD"),
        ("12,50 EUR", "12.50", "EUR"),
    ],
)
def test_amounts(text, amount, currency):
    value, cur, _ = parse_amount(text)
    assert str(value) == amount and cur == currency


def test_raw_8bit_headers_are_read_as_text():
    raw = "From: Mia <mia@alpine.example>\r\nSubject: AW: Leads für Zürich\r\n\r\nclaim L-1\r\n"
    parsed = read_mail(raw.encode("utf-8"))
    assert parsed.subject == "AW: Leads für Zürich"
    parsed = read_mail(raw.encode("cp1252"))
    assert parsed.subject == "AW: Leads für Zürich"


def test_format_flowed_is_unwrapped_and_keeps_quotes():
    text = "CLAIM L-1 \nand more\n> quoted \n> line\n-- \nsig"
    assert unflow(text).splitlines() == ["CLAIM L-1 and more", "> quoted line", "-- ", "sig"]


def test_cut_rules():
    cases = {
        "claim L-1\n-----Original Message-----\nclaim L-2": "claim L-1",
        "claim L-1\nFrom: a@b.c Sent: Monday To: x Subject: y\nclaim L-2": "claim L-1",
        "claim L-1\n*From:* Lyra\n*Sent:* Monday\nclaim L-2": "claim L-1",
        "claim L-1\nVon: Lyra\nGesendet: Montag\nclaim L-2": "claim L-1",
        "claim L-1\nSent from my iPhone\nclaim L-2": "claim L-1",
        "claim L-1\n##- Lyra -## Please type your reply above this line.\nclaim L-2": "claim L-1",
        "claim L-1\nOn Mon, 2 Nov 2026, Lyra\n<lyra@lyra.test> wrote:\nclaim L-2": "claim L-1",
        "claim L-1\nLe lun. 2 nov. 2026, Lyra <lyra@lyra.test> a\nécrit :\nclaim L-2": "claim L-1",
    }
    for body, new in cases.items():
        assert split_reply(body)[0] == new, body


# --- property: never raises, never acts on quoted text -------------------------------

REF = st.integers(1000, 1999).map(lambda n: f"L-{n}")
QREF = st.integers(9000, 9999).map(lambda n: f"Q-{n}")
COMMAND = st.one_of(
    REF.map(lambda r: f"claim {r}"),
    REF.map(lambda r: f"WON {r} 12'000 CHF"),
    REF.map(lambda r: f"lost {r} too dear"),
    st.sampled_from(["LEADS", "mine", "help", "STOP"]),
)
QCOMMAND = st.one_of(
    QREF.map(lambda r: f"claim {r}"),
    QREF.map(lambda r: f"won {r} 5000"),
    QREF.map(lambda r: f"**ÜBERNEHMEN** {r}"),
    QREF.map(lambda r: f"release {r}"),
    st.just("won 12000"),
    st.just("lost price"),
)
LINE = st.one_of(COMMAND, st.text(max_size=60).filter(lambda s: "\n" not in s and "\r" not in s))
SEPARATORS = [
    "On Mon, 2 Nov 2026 at 10:00, Lyra <lyra@lyra.test> wrote:",
    "Am Mo., 2. Nov. 2026 um 10:00 Uhr schrieb Lyra <\nlyra@lyra.test>:",
    "Le lun. 2 nov. 2026 à 10:00, Lyra <lyra@lyra.test> a écrit :",
    "-----Original Message-----",
    "________________________________\nFrom: Lyra <lyra@lyra.test>\nSent: Monday\nTo: mia",
    "Von: Lyra <lyra@lyra.test>\nGesendet: Montag\nAn: mia\nBetreff: Leads",
    "De : Lyra\nEnvoyé : lundi\nÀ : mia\nObjet : leads",
    "##- Lyra -## Please type your reply above this line.",
    "-- ",
    "Sent from my iPhone",
    # Europe's other clients, by words and by structure (issue 14, item 8)
    "Da: Lyra <lyra@lyra.test>\nInviato: lunedì 2 novembre 2026 10:00\nA: mia\nOggetto: lead",
    "Il giorno lun 2 nov 2026 alle ore 10:00 Lyra <lyra@lyra.test> ha\nscritto:",
    "-----Mensaje original-----\nDe: Lyra\nEnviado el: lunes, 2 de noviembre de 2026 10:00",
    "De: Lyra <lyra@lyra.test>\nEnviado: lunes\nPara: mia\nAsunto: leads",
    "El lun, 2 nov 2026 a las 10:00, Lyra (<lyra@lyra.test>) escribió:",
    "Från: Lyra <lyra@lyra.test>\nSkickat: den 2 november 2026 10:00\nTill: mia\nÄmne: leads",
    "2 nov. 2026 kl. 10:00 skrev Lyra <lyra@lyra.test>:",
    "Fra: Lyra\nSendt: mandag 2. november 2026 10:00\nTil: mia\nEmne: leads",
    "Den man. 2. nov. 2026 kl. 10.00 skrev Lyra <lyra@lyra.test>:",
    "-----Oprindelig meddelelse-----",
    "Van: Lyra <lyra@lyra.test>\nVerzonden: maandag 2 november 2026 10:00\nAan: mia",
    "Op ma 2 nov 2026 om 10:00 schreef Lyra <lyra@lyra.test>:",
    "Od: Lyra <lyra@lyra.test>\nWysłano: poniedziałek, 2 listopada 2026 10:00\nDo: mia",
    "W dniu 2.11.2026 o 10:00, Lyra pisze:",
    "Em seg., 2 de nov. de 2026 às 10:00, Lyra <lyra@lyra.test> escreveu:",
    "Lähettäjä: Lyra\nLähetetty: maanantai 2. marraskuuta 2026 10.00\nVastaanottaja: mia",
    "No: Lyra\nNosūtīts: pirmdiena, 2026. gada 2. novembris 10:00\nKam: Mia\nTēma: leadi",
    "*-------- Original Message --------*",
    "---- On Mon, 02 Nov 2026 10:00:00 +0100 Lyra <lyra@lyra.test> wrote ----",
    "2026-11-02 10:00 GMT+01:00 Lyra <lyra@lyra.test>:",
]


def _mail(body: str, html: bool = False) -> bytes:
    ctype = "text/html" if html else "text/plain"
    head = (
        "From: Mia <mia@alpine.example>\r\nTo: leads+tok@lyra.test\r\nSubject: Re: leads\r\n"
        f"Message-ID: <p@x>\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.encode("utf-8", "surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=st.lists(LINE, max_size=6),
    quoted=st.lists(QCOMMAND, min_size=1, max_size=5),
    separator=st.sampled_from(SEPARATORS),
    quote_prefix=st.sampled_from(["> ", ">", "", "> > ", "| ", "|"]),
    bound=st.booleans(),
)
def test_commands_never_come_from_quoted_text(new, quoted, separator, quote_prefix, bound):
    new_text = "\n".join(new)
    quoted_text = "\n".join(quote_prefix + q for q in quoted)
    if not quote_prefix and separator in {"-- ", "Sent from my iPhone"}:
        pass  # a signature: whatever follows is cut as well
    body = f"{new_text}\n\n{separator}\n\n{quoted_text}\n"
    default = "L-1500" if bound else None
    parsed = read_mail(_mail(body))
    found = [p.describe() for p in commands_of(parsed, default)]
    alone = [p.describe() for p in commands_of(read_mail(_mail(new_text + "\n")), default)]
    assert all("Q-" not in f for f in found), (body, found)
    assert found == alone[: len(found)], (body, found, alone)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw):
    parsed = read_mail(raw)
    commands_of(parsed, "L-1")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(
                [
                    "Content-Type: multipart/alternative; boundary=b\r\n",
                    "--b\r\n",
                    "Content-Type: text/html; charset=utf-8\r\n",
                    "Content-Transfer-Encoding: base64\r\n",
                    "Content-Transfer-Encoding: quoted-printable\r\n",
                    "<div class=gmail_quote><blockquote>claim Q-9999</blockquote></div>",
                    "=E2=80=AF",
                    "Subject: =?utf-8?b?w7xiZXJuZWhtZW4=?=\r\n",
                    'From: "broken <\r\n',
                    "\r\n",
                ]
            ),
        ),
        max_size=25,
    )
)
def test_mangled_mime_never_raises(parts):
    raw = "".join(parts).encode("utf-8", "surrogatepass")
    parsed = read_mail(raw)
    found = [p.describe() for p in commands_of(parsed, None)]
    assert all("Q-9999" not in f for f in found)


@settings(max_examples=150, deadline=None)
@given(new=st.lists(LINE, max_size=4), quoted=st.lists(QCOMMAND, min_size=1, max_size=4))
def test_html_quotes_are_never_read(new, quoted):
    import html as h

    body = (
        "<div>" + "<br>".join(h.escape(x) for x in new) + "</div>"
        '<div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div><blockquote>'
        + "<br>".join(h.escape(q) for q in quoted)
        + "</blockquote></div>"
    )
    parsed = read_mail(_mail(body, html=True))
    found = [p.describe() for p in commands_of(parsed, None)]
    assert all("Q-" not in f for f in found), (body, found)
