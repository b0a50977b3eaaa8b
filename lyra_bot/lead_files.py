"""Lead files as owners have them: CSV from Excel or a CRM in whatever encoding and
delimiter it was saved with, or an ``.xlsx`` workbook, with headers in their own words.

``read_file`` turns the bytes into a ``LeadTable`` (header and rows with the line or row
number a person sees in the file); ``records`` maps the header to Lyra's lead fields
(``Contact Name``, ``E-Mail``, ``Firma``, ``Société`` …, regardless of case, spaces,
punctuation and accents) and names every column it cannot place. Validation of the values
is the import handler's: it sees every row and refuses the whole file naming each line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from lyra_bot.domain import LEAD_FIELDS, InvalidInput

# Encodings tried when a file is not UTF-8: the Western ones Excel and Windows save in.
# (An open choice makes charset-normalizer read short German files as Central European.)
LEGACY_ENCODINGS = ["cp1252", "iso8859_15", "mac_roman", "cp850"]
DELIMITERS = ",;\t|"
EXTRA = "_extra"  # values beyond the header's columns

# Header names per lead field, in English, German, French and Italian; compared after
# ``header_key`` (so "E-Mail", "e_mail" and "EMAIL" are one name).
ALIASES: dict[str, tuple[str, ...]] = {
    "ref": ("ref", "reference", "lead ref", "lead id", "referenz", "référence", "riferimento"),
    "product": ("product", "produkt", "produit", "prodotto", "article", "artikel", "solution"),
    "region": (
        "region",
        "région",
        "regione",
        "region code",
        "kanton",
        "canton",
        "cantone",
        "bundesland",
        "state",
        "country",
        "land",
        "pays",
        "paese",
    ),
    "industry": ("industry", "branche", "industrie", "secteur", "settore", "sector"),
    "size": (
        "size",
        "company size",
        "employees",
        "grösse",
        "größe",
        "firmengrösse",
        "mitarbeitende",
        "mitarbeiter",
        "taille",
        "effectif",
        "dimensione",
        "dipendenti",
    ),
    "need": (
        "need",
        "needs",
        "requirement",
        "description",
        "bedarf",
        "beschreibung",
        "besoin",
        "bisogno",
        "esigenza",
    ),
    "company": (
        "company",
        "company name",
        "account",
        "account name",
        "organisation",
        "organization",
        "firma",
        "firmenname",
        "unternehmen",
        "société",
        "entreprise",
        "azienda",
        "ditta",
    ),
    "contact_name": (
        "contact name",
        "contact",
        "name",
        "full name",
        "contact person",
        "kontakt",
        "kontaktperson",
        "ansprechpartner",
        "ansprechperson",
        "nom",
        "nom du contact",
        "personne de contact",
        "contatto",
        "nome",
        "referente",
    ),
    "email": (
        "email",
        "e-mail",
        "mail",
        "email address",
        "e-mail-adresse",
        "courriel",
        "adresse e-mail",
        "posta elettronica",
        "indirizzo email",
    ),
    "phone": (
        "phone",
        "phone number",
        "telephone",
        "tel",
        "mobile",
        "telefon",
        "telefonnummer",
        "handy",
        "téléphone",
        "numéro de téléphone",
        "telefono",
        "cellulare",
    ),
    "address": ("address", "adresse", "anschrift", "indirizzo", "street", "strasse"),
    "notes": (
        "notes",
        "note",
        "comments",
        "comment",
        "notizen",
        "bemerkungen",
        "kommentar",
        "remarques",
        "commentaires",
        "commenti",
    ),
    "locale": ("locale", "language", "sprache", "langue", "lingua", "customer language"),
    "legal_basis": ("legal basis", "rechtsgrundlage", "base légale", "base giuridica"),
    "consent_source": ("consent source", "einwilligungsquelle", "source du consentement"),
    "consent_at": ("consent at", "consent date", "einwilligung am", "date du consentement"),
    "legal_note": ("legal note", "rechtlicher hinweis", "note juridique"),
}


def header_key(name: str) -> str:
    """``" Société "`` → ``societe``, ``E-Mail`` → ``email``, ``contact_name`` → ``contactname``."""
    plain = unicodedata.normalize("NFKD", name.replace("ß", "ss"))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]", "", plain.casefold())


_BY_KEY: dict[str, str] = {}
for _field in LEAD_FIELDS:
    for _name in (_field, *ALIASES.get(_field, ())):
        _BY_KEY.setdefault(header_key(_name), _field)


@dataclass
class LeadTable:
    """A file's header and its rows, each with the line (CSV) or row (xlsx) it came from."""

    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""


def read_file(data: bytes, filename: str = "") -> LeadTable:
    """The table in ``data``: an ``.xlsx`` workbook's first sheet, else CSV text."""
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        return read_xlsx(data)
    text, encoding = decode(data)
    table = read_csv_text(text)
    table.encoding = encoding
    return table


def decode(data: bytes) -> tuple[str, str]:
    """Text and the name of its encoding: a BOM's, else UTF-8, else the likeliest of
    ``LEGACY_ENCODINGS`` (charset-normalizer)."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=LEGACY_ENCODINGS).best()
    if best is None or best.encoding is None:
        raise InvalidInput("unknown_encoding")
    return str(best), best.encoding


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header line: whichever of ``, ; TAB |`` it holds most of
    (Excel in German, French and Swiss locales saves CSV with ``;``)."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        try:
            return csv.Sniffer().sniff(text[:4096], delimiters=DELIMITERS).delimiter
        except csv.Error:
            return ","
    return best


def read_csv_text(text: str) -> LeadTable:
    text = text.lstrip("\ufeff")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, [])
    table = LeadTable([h.strip() for h in header], delimiter=delimiter)
    for values in reader:
        table.rows.append((reader.line_num, values))
    return table


def read_xlsx(data: bytes) -> LeadTable:
    """The first sheet of a workbook; numbers that are whole (phone numbers, postcodes)
    without ``.0``, dates as ISO dates."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl errors alike: not a workbook
        raise InvalidInput("not_xlsx", detail=str(exc)) from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = [_xlsx_text(v).strip() for v in next(rows, ())]
        while header and not header[-1]:
            header.pop()
        table = LeadTable(header, encoding="xlsx")
        for number, values in enumerate(rows, start=2):
            table.rows.append((number, [_xlsx_text(v) for v in values]))
        return table
    finally:
        book.close()


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def header_fields(header: list[str]) -> list[str | None]:
    """The lead field of each column (None for an empty trailing-style column); refuses a
    header that misses product or region, has columns it cannot place, or places two
    columns on one field — naming each, with line 1."""
    fields: list[str | None] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    problems: list[dict[str, object]] = []
    for name in header:
        if not name.strip():
            fields.append(None)
            continue
        target = _BY_KEY.get(header_key(name))
        if target is None:
            unknown.append(name)
        elif target in seen:
            problems.append(
                {
                    "phrase": "columns_clash",
                    "line": 1,
                    "first": seen[target],
                    "second": name,
                    "field": target,
                }
            )
        else:
            seen[target] = name
        fields.append(target)
    missing = [f for f in ("product", "region") if f not in seen]
    if missing:
        problems.insert(0, {"phrase": "missing_columns", "line": 1, "fields": missing})
    if unknown:
        problems.append(
            {
                "phrase": "unknown_columns",
                "line": 1,
                "fields": unknown,
                "choices": list(LEAD_FIELDS),
            }
        )
    if problems:
        raise InvalidInput("lead_invalid", problems=problems)
    return fields


def records(table: LeadTable) -> list[tuple[int, dict[str, str]]]:
    """Each non-empty row as (line, {lead field: text}); a row with more values than the
    header has columns keeps them under ``EXTRA`` so the handler can name the line."""
    if not any(h.strip() for h in table.header):
        raise InvalidInput("import_empty")
    fields = header_fields(table.header)
    result: list[tuple[int, dict[str, str]]] = []
    for line, values in table.rows:
        if not any((v or "").strip() for v in values):
            continue
        row: dict[str, Any] = {}
        extra = [v for v in values[len(fields) :] if v.strip()]
        for name, value in zip(fields, values, strict=False):
            if name is not None:
                row[name] = value
        if extra:
            row[EXTRA] = extra
        result.append((line, row))
    return result
