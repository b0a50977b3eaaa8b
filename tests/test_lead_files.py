"""Lead files as owners export them: Excel CSV with ; and a BOM, Windows-1252, .xlsx,
headers in their own words; bad regions and unreachable customers refused; dry runs."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from openpyxl import Workbook

from lyra_bot import commands as c
from lyra_bot import lead_files
from lyra_bot.domain import InvalidInput
from lyra_bot.models import Lead
from tests.world import build_world


def records(data: bytes, name: str = "leads.csv") -> tuple[tuple[int, dict], ...]:
    return tuple(lead_files.records(lead_files.read_file(data, name)))


async def imported(world, found, **options) -> dict[str, Lead]:
    reply = await world.ok(c.ImportLeads(records=found, **options), world.owner)
    leads = await Lead.filter(tenant_id=world.tenant_id, ref__in=reply.data["refs"])
    return {lead.ref: lead for lead in leads}


async def test_excel_csv_with_semicolons_a_bom_and_german_headers(bus):
    world = await build_world(bus)
    data = (
        "\ufeffProdukt;Region;Firma;Contact Name;E-Mail;Telefon;Bemerkungen\r\n"
        "Firewall;ch-zh;Bäckerei Müller AG;Jürg Häfliger;J@Mueller.example;;Ruft zurück\r\n"
        'VPN;CH-BE;"Keller; Söhne";Marc Keller;;+41 31 555 02 02;\r\n'
    ).encode()
    table = lead_files.read_file(data, "export.csv")
    assert (table.encoding, table.delimiter) == ("utf-8-sig", ";")
    leads = list((await imported(world, records(data))).values())
    by_company = {lead.company: lead for lead in leads}
    first, second = by_company["Bäckerei Müller AG"], by_company["Keller; Söhne"]
    assert (first.product, first.region, first.contact_name, first.email, first.notes) == (
        "Firewall",
        "CH-ZH",
        "Jürg Häfliger",
        "j@mueller.example",
        "Ruft zurück",
    )
    assert (second.phone, second.email) == ("+41 31 555 02 02", "")


async def test_windows_1252_file_with_french_headers(bus):
    world = await build_world(bus)
    text = (
        "Produit,Région,Société,Nom du contact,Courriel,Téléphone,Adresse\n"
        "Firewall,CH-GE,Société Générale – Genève,Zoë Lefèvre,zoe@sg.example,,"
        "Rue du Rhône 30\n"
    )
    data = text.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # what the import used to die on
    assert lead_files.read_file(data).encoding == "cp1252"
    [lead] = (await imported(world, records(data))).values()
    assert (lead.company, lead.contact_name, lead.address) == (
        "Société Générale – Genève",
        "Zoë Lefèvre",
        "Rue du Rhône 30",
    )


async def test_xlsx_workbook_first_sheet_with_numbers_and_dates(bus):
    world = await build_world(bus)
    book = Workbook()
    sheet = book.active
    sheet.append(
        [
            "Product",
            "Region",
            "Company",
            "E-Mail",
            "Phone",
            "Legal Basis",
            "Consent Source",
            "Consent At",
        ]
    )
    sheet.append(["VPN", "CH-ZH", "Velo AG", "lea@velo.example", None, None, None, None])
    sheet.append(["Firewall", "DE-BY", "Bräu GmbH", None, 41445550101, None, None, None])
    sheet.append([None] * 8)  # an empty row Excel keeps
    sheet.append(
        [
            "VPN",
            "CH",
            "Consent AG",
            "c@consent.example",
            None,
            "consent",
            "fair",
            datetime(2026, 11, 27),
        ]
    )
    buffer = io.BytesIO()
    book.save(buffer)
    found = records(buffer.getvalue(), "Leads November.xlsx")
    assert [line for line, _ in found] == [2, 3, 5]  # the sheet's own row numbers
    leads = {lead.company: lead for lead in (await imported(world, found)).values()}
    assert leads["Bräu GmbH"].phone == "41445550101"  # not 41445550101.0
    assert leads["Bräu GmbH"].region == "DE-BY"
    assert leads["Consent AG"].legal_basis == "consent"
    assert leads["Consent AG"].consent_at.date().isoformat() == "2026-11-27"  # a date cell


async def test_a_bad_row_in_a_workbook_names_its_row(bus):
    world = await build_world(bus)
    book = Workbook()
    book.active.append(["product", "region", "email"])
    book.active.append(["VPN", "CH", "a@x.example"])
    book.active.append(["VPN", "Narnia", "b@x.example"])
    buffer = io.BytesIO()
    book.save(buffer)
    reply = await world.do(c.ImportLeads(records=records(buffer.getvalue(), "x.xlsx")), world.owner)
    assert reply.data["problems"] == [
        {"phrase": "bad_region", "field": "region", "value": "NARNIA", "line": 3}
    ]
    assert (
        "line 3: region 'NARNIA' is not a region code like CH or CH-ZH "
        "(an ISO 3166 country or subdivision)"
    ) in reply.message


@pytest.mark.parametrize(
    "header",
    [
        "Product,Region,Contact Name,E-Mail,Phone",
        "PRODUCT;REGION;contact_name;email;phone",
        "produkt\tregion\tKontaktperson\tE-Mail-Adresse\tTelefon",
        "Prodotto|Regione|Contatto|Posta elettronica|Telefono",
        " product , region , Contact-Name , e_mail , Tel ",
    ],
)
def test_header_aliases_regardless_of_case_spaces_punctuation_and_language(header):
    delimiter = lead_files.sniff_delimiter(header)
    line = delimiter.join(["VPN", "CH", "Anna", "a@x.example", "044"])
    [(number, row)] = lead_files.records(lead_files.read_csv_text(f"{header}\n{line}\n"))
    assert number == 2
    assert {k: v.strip() for k, v in row.items()} == {
        "product": "VPN",
        "region": "CH",
        "contact_name": "Anna",
        "email": "a@x.example",
        "phone": "044",
    }


def test_a_header_it_cannot_place_is_refused_naming_the_columns():
    with pytest.raises(InvalidInput) as caught:
        lead_files.records(lead_files.read_csv_text("Produkt,Farbe,Firma,Company\nX,Y,Z,W\n"))
    message = caught.value.message
    assert message.startswith("line 1: missing columns: region")
    assert "unknown columns: Farbe" in message
    assert "columns 'Firma' and 'Company' both mean company" in message


async def test_bad_regions_and_unreachable_customers_refuse_the_whole_file(bus):
    world = await build_world(bus)
    before = await Lead.filter(tenant_id=world.tenant_id).count()
    text = (
        "product,region,email,phone\n"
        "VPN,CH-ZH,a@x.example,\n"
        "VPN,Narnia,b@x.example,\n"
        "VPN,CH-XX,c@x.example,\n"
        "VPN,XX,d@x.example,\n"
        "VPN,CH,,\n"
        "VPN,DE-BY,,089 123 45 67\n"
    )
    reply = await world.do(c.ImportLeads(records=records(text.encode())), world.owner)
    assert reply.code == "invalid_input" and "Nothing was imported" in reply.message
    assert [p["line"] for p in reply.data["problems"]] == [3, 4, 5, 6]
    said = reply.message.splitlines()
    assert "line 4: region 'CH-XX' is not a region code" in said[2]
    assert said[4] == "line 6: neither email nor phone to reach the customer"
    assert await Lead.filter(tenant_id=world.tenant_id).count() == before
    # one lead through the API's and the CLI's way in: the same region rule
    refused = await world.do(c.AddLead("VPN", "Narnia", email="x@y.example"), world.owner)
    assert refused.code == "invalid_input" and "ISO 3166" in refused.message


async def test_dry_run_says_what_would_happen_and_changes_nothing(bus):
    world = await build_world(bus)
    before = await Lead.filter(tenant_id=world.tenant_id).count()
    text = (
        "product,region,email\n"
        "VPN,CH-ZH,new@x.example\n"
        "VPN,CH-ZH,anna@huber.example\n"  # the customer of a live lead (tests/world.py)
        "VPN,CH-BE,new@x.example\n"  # the same customer as line 2
    )
    reply = await world.ok(c.ImportLeads(records=records(text.encode()), dry_run=True), world.owner)
    assert reply.code == "import_preview"
    assert (reply.data["count"], reply.data["pool"]) == (3, 1)
    assert [h["line"] for h in reply.data["held"]] == [3, 4]
    assert "possible duplicate of L-1001" in reply.data["held"][0]["reason"]
    assert "possible duplicate of line 2" in reply.data["held"][1]["reason"]
    assert "Nothing was changed" in reply.message
    assert await Lead.filter(tenant_id=world.tenant_id).count() == before
