"""Real bank exports import without hand-mapping: presets recognised by their headers, columns
found by common names in any case, dates read in the format they are in (never guessing between
day-first and month-first), and signs from the amounts or from a type column."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.ingest.imports import CsvMapping, ImportErrors, read_export

EXPORTS = Path(__file__).parent / "data" / "exports"


def read(text: str, **mapping: object) -> tuple[list[tuple[date, str, Decimal, str]], list[str]]:
    result = read_export(
        text,
        filename="export.csv",
        mapping=CsvMapping(**mapping),
        account_id="acct",  # type: ignore[arg-type]
    )
    assert result.detected is not None
    rows = [
        (t.timestamp.date(), t.direction.value, t.amount, t.merchant or "")
        for t in result.transactions
    ]
    return rows, result.detected.notes


USD, GBP, EUR = "USD", "GBP", "EUR"
# file: preset, rows, credits, and the first row (date, direction, amount, currency, merchant,
# category)
PRESET_FILES = {
    "chase.csv": ("chase", 5, 2, ("2026-11-28", "debit", "42.17", USD,
                                  "AMAZON MKTPL*ZT4R81VD3", "Shopping")),
    "chase-checking.csv": ("chase-checking", 3, 1, ("2026-11-30", "debit", "48.21", USD,
                                                    "SHELL OIL 57444 NEW YORK NY", None)),
    "bofa.csv": ("bofa", 3, 1, ("2026-11-01", "debit", "2860.00", USD,
                                "GREYSTAR RENT DES:PAYMENT ID:XXXXX8812", None)),
    "bofa-credit.csv": ("bofa-credit", 2, 1, ("2026-11-28", "debit", "87.34", USD,
                                              "WHOLE FOODS MARKET 10234", None)),
    "amex.csv": ("amex", 3, 1, ("2026-11-28", "debit", "23.18", USD,
                                "UBER TRIP HELP.UBER.COM", "Transportation-Taxis & Coach")),
    "capital-one.csv": ("capital-one", 3, 1, ("2026-11-28", "debit", "14.85", USD,
                                              "CHIPOTLE 2241", "Dining")),
    "monzo.csv": ("monzo", 3, 1, ("2026-11-28", "debit", "4.35", GBP,
                                  "Pret A Manger", "Eating out")),
    "revolut.csv": ("revolut", 3, 1, ("2026-11-28", "debit", "23.50", EUR, "Uber Eats", None)),
    "n26.csv": ("n26", 3, 1, ("2026-11-28", "debit", "37.80", EUR, "REWE Markt GmbH", None)),
    "wise.csv": ("wise", 3, 1, ("2026-11-28", "debit", "12.40", EUR, "Albert Heijn", None)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PRESET_FILES))
def test_each_preset_reads_its_banks_export_as_the_bank_gives_it(name: str) -> None:
    preset, count, credits, first = PRESET_FILES[name]
    text = (EXPORTS / name).read_text(encoding="utf-8-sig")
    result = read_export(text, filename=name, mapping=CsvMapping(), account_id="card")
    assert result.detected is not None and result.detected.preset is not None
    assert result.detected.preset.name == preset
    assert len(result.transactions) == count
    t = result.transactions[0]
    assert (
        t.timestamp.date().isoformat(),
        t.direction.value,
        str(t.amount),
        t.currency,
        t.merchant,
        t.category,
    ) == first
    assert sum(tx.direction.value == "credit" for tx in result.transactions) == credits


def test_the_issue_s_chase_export_needs_no_options_and_its_type_and_category_count() -> None:
    text = (EXPORTS / "chase.csv").read_text()
    result = read_export(text, filename="chase.csv", mapping=CsvMapping(), account_id="chase")
    by_merchant = {t.merchant: t for t in result.transactions}
    assert by_merchant["AMAZON.COM REFUND"].direction.value == "credit"  # Type: Return
    assert by_merchant["Payment Thank You-Mobile"].direction.value == "credit"  # Type: Payment
    assert by_merchant["NETFLIX.COM"].category == "Entertainment"


@pytest.mark.parametrize(
    "header",
    [
        "DATE,PAYEE,AMOUNT",
        "Transaction Date,Name,Amount",
        "Posted Date,Details,Transaction Amount",
        "booking date,Memo,amount",
    ],
)
def test_headers_match_in_any_case_and_by_common_synonyms(header: str) -> None:
    rows, notes = read(f"{header}\n2026-11-28,CORNER CAFE,-4.50\n2026-11-29,ACME PAY,100.00\n")
    assert rows == [
        (date(2026, 11, 28), "debit", Decimal("4.50"), "CORNER CAFE"),
        (date(2026, 11, 29), "credit", Decimal("100.00"), "ACME PAY"),
    ]
    assert any("matched columns by name" in note for note in notes)


@pytest.mark.parametrize(
    ("out_column", "in_column"),
    [
        ("Withdrawal", "Deposit"),
        ("Paid out", "Paid in"),
        ("Debit", "Credit"),
        ("Money Out", "Money In"),
    ],
)
def test_money_out_and_money_in_columns(out_column: str, in_column: str) -> None:
    text = f"Date,Description,{out_column},{in_column}\n"
    text += "2026-11-02,GROCER,12.30,\n2026-11-03,SALARY,,900\n"
    rows, _ = read(text)
    assert [(r[1], r[2]) for r in rows] == [("debit", Decimal("12.30")), ("credit", Decimal("900"))]


def test_a_german_export_with_its_own_names_and_day_first_dots() -> None:
    text = "Buchungstag,Verwendungszweck,Betrag\n"
    text += "28.11.2026,REWE SAGT DANKE,-37.80\n01.11.2026,MIETE,-1150.00\n"
    rows, notes = read(text)
    assert rows[0] == (date(2026, 11, 28), "debit", Decimal("37.80"), "REWE SAGT DANKE")
    assert "dates read as %d.%m.%Y" in notes


def test_day_first_dates_are_recognised_by_a_day_above_twelve() -> None:
    rows, notes = read("Date,Description,Amount\n03/04/2026,A,-1.00\n13/04/2026,B,-2.00\n")
    assert [r[0] for r in rows] == [date(2026, 4, 3), date(2026, 4, 13)]
    assert "dates read as %d/%m/%Y" in notes


def test_dates_that_read_both_ways_are_refused_with_the_formats_to_choose_from() -> None:
    text = "Date,Description,Amount\n03/04/2026,A,-1.00\n05/06/2026,B,-2.00\n"
    with pytest.raises(ImportErrors) as raised:
        read(text)
    [problem] = raised.value.errors
    assert problem.column == "Date"
    assert "--date-format %d/%m/%Y or %m/%d/%Y" in problem.message
    rows, _ = read(text, date_format="%m/%d/%Y")
    assert rows[0][0] == date(2026, 3, 4)


def test_unsigned_amounts_take_their_direction_from_a_type_column() -> None:
    text = (
        "Date,Description,Type,Amount\n"
        "2026-11-01,CORNER SHOP,Sale,12.00\n"
        "2026-11-02,CORNER SHOP,Return,12.00\n"
        "2026-11-03,BANK,CRDT,50.00\n"
        "2026-11-04,UTILITY,DBIT,80.00\n"
    )
    rows, notes = read(text)
    assert [r[1] for r in rows] == ["debit", "credit", "credit", "debit"]
    assert any("direction comes from 'Type'" in note for note in notes)


def test_a_card_export_whose_charges_are_positive_reads_positive_as_money_out() -> None:
    text = "Date,Description,Amount\n2026-11-01,UBER,23.18\n2026-11-02,TRADER JOES,64.02\n"
    text += "2026-11-05,AUTOPAY PAYMENT,-512.40\n"
    rows, notes = read(text)
    assert [r[1] for r in rows] == ["debit", "debit", "credit"]
    assert "most amounts are positive: positive is money out" in notes
    flipped, _ = read(text, negative_is_debit=True)  # what is given wins
    assert [r[1] for r in flipped] == ["credit", "credit", "debit"]


def test_a_named_column_that_is_not_there_is_an_error_naming_it() -> None:
    with pytest.raises(ImportErrors) as raised:
        read("Date,Description,Amount\n2026-11-01,A,-1\n", amount="Value")
    assert raised.value.errors[0].column == "Value"
    assert "the file has Amount, Date, Description" in raised.value.errors[0].message


def test_a_file_without_a_date_column_says_what_it_has() -> None:
    with pytest.raises(ImportErrors) as raised:
        read("When,What,How much\nyesterday,A,-1\n")
    assert {e.column for e in raised.value.errors} == {"date", "amount"}


def test_an_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ImportErrors) as raised:
        read_export(
            "Date,Amount\n", filename="x.csv", mapping=CsvMapping(), account_id="a", preset="hsbc"
        )
    assert "no preset 'hsbc'; known: amex, bofa" in raised.value.errors[0].message


def test_dry_run_prints_the_mapping_and_rows_and_imports_nothing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "services.cli.main", "import", str(EXPORTS / "chase.csv")]
    done = subprocess.run(
        [*command, "--account", "chase", "--dry-run"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"},
        cwd=tmp_path,
        check=True,
    )
    out = done.stdout
    assert "recognised the Chase credit card export (preset chase)" in out
    assert "date = 'Transaction Date'" in out and "type = 'Type'" in out
    assert "5 transactions (dry run: nothing imported)" in out
    assert "AMAZON MKTPL*ZT4R81VD3" in out and "42.17" in out


# Other formats -------------------------------------------------------------------------------


def test_ofx_zones_and_entities_are_read_as_the_bank_meant_them() -> None:
    text = (EXPORTS / "bank.ofx").read_text()
    result = read_export(text, filename="bank.ofx", mapping=CsvMapping())
    assert result.kind == "ofx"
    first, second = result.transactions
    # 23:30 on 30 November in New York: the local date stays the 30th, the offset is kept.
    assert first.timestamp.isoformat() == "2026-11-30T23:30:00-05:00"
    assert first.merchant == "BARNES & NOBLE #2231"  # &amp; decoded
    assert (first.direction.value, str(first.amount)) == ("debit", "48.21")
    assert second.timestamp.isoformat() == "2026-11-15T00:00:00-05:00"  # a date with a zone
    assert second.direction.value == "credit"
    assert {t.transaction_id.split(":")[0] for t in result.transactions} == {"000123456789"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261130233000.000[-5:EST]", "2026-11-30T23:30:00-05:00"),
        ("20261115120000[+5.30:IST]", "2026-11-15T12:00:00+05:30"),
        ("20261115[-3.30:NST]", "2026-11-15T00:00:00-03:30"),
        ("20261115", "2026-11-15T00:00:00+00:00"),
    ],
)
def test_ofx_datetimes(value: str, expected: str) -> None:
    from services.ingest.imports import parse_ofx_datetime

    assert parse_ofx_datetime(value).isoformat() == expected


def test_qif_with_us_dates_and_categories() -> None:
    text = (EXPORTS / "quicken.qif").read_text()
    result = read_export(text, filename="quicken.qif", mapping=CsvMapping(), account_id="cash")
    assert result.kind == "qif"
    rows = [
        (t.timestamp.date(), t.direction.value, str(t.amount), t.merchant, t.category)
        for t in result.transactions
    ]
    assert rows == [
        (date(2026, 11, 28), "debit", "42.17", "AMAZON MKTPL*ZT4R81VD3", "Shopping"),
        (date(2026, 11, 15), "credit", "2450.00", "ACME CORP PAYROLL", "Salary"),
    ]


def test_qif_dates_that_read_both_ways_are_refused() -> None:
    text = "!Type:Bank\nD03/04/2026\nT-1.00\nPA\n^\nD05/06/2026\nT-2.00\nPB\n^\n"
    with pytest.raises(ImportErrors) as raised:
        read_export(text, filename="x.qif", mapping=CsvMapping(), account_id="a")
    assert "--date-format" in raised.value.errors[0].message
    result = read_export(
        text, filename="x.qif", mapping=CsvMapping(date_format="%d/%m/%Y"), account_id="a"
    )
    assert result.transactions[0].timestamp.date() == date(2026, 4, 3)


def test_camt_053_booked_entries_with_their_counterparties() -> None:
    text = (EXPORTS / "camt053.xml").read_text()
    result = read_export(text, filename="statement.xml", mapping=CsvMapping())
    assert result.kind == "camt.053"
    rows = [
        (t.account_id, t.timestamp.date(), t.direction.value, str(t.amount), t.currency, t.merchant)
        for t in result.transactions
    ]
    iban = "DE89370400440532013000"
    assert rows == [
        (iban, date(2026, 11, 28), "debit", "37.80", "EUR", "REWE Markt GmbH"),
        (iban, date(2026, 11, 27), "credit", "3100.00", "EUR", "Acme GmbH"),
    ], "the pending entry is not a transaction yet"
    assert result.transactions[0].description == "REWE SAGT DANKE 4711"


def test_xml_with_entities_is_refused_before_it_expands() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&b;</Document>'
    )
    with pytest.raises(ImportErrors) as raised:
        read_export(bomb, filename="statement.xml", mapping=CsvMapping(), account_id="a")
    assert raised.value.errors[0].message.startswith("refused XML")


# Encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "payee"),
    [
        ("utf-8", "セブン-イレブン"),
        ("utf-8-sig", "Café Nero"),
        ("utf-16", "Café Nero"),  # a spreadsheet's "Unicode text"
        # Windows code pages, as European banks' desktop exports write them.
        ("cp1252", "Bäckerei Müller"),
        ("cp1252", "Panadería Martínez"),
        ("cp1250", "Żabka Łódź"),
        ("cp1251", "Пятёрочка"),
    ],
)
def test_an_export_reads_in_the_encoding_it_was_written_in(encoding: str, payee: str) -> None:
    text = f"Date,Payee,Amount\n2026-11-02,{payee},-4.50\n2026-11-03,Rewe Markt,-32.10\n"
    result = read_export(
        text.encode(encoding), filename="export.csv", mapping=CsvMapping(), account_id="acct"
    )
    assert [t.merchant for t in result.transactions] == [payee, "Rewe Markt"]


def test_ofx_and_camt_read_in_the_code_page_their_headers_declare() -> None:
    ofx = (EXPORTS / "bank.ofx").read_text().replace("BARNES &amp; NOBLE", "CAFÉ RÖSTEREI")
    read = read_export(ofx.encode("cp1252"), filename="bank.ofx", mapping=CsvMapping())
    assert read.transactions[0].merchant == "CAFÉ RÖSTEREI #2231"
    camt = (
        (EXPORTS / "camt053.xml")
        .read_text()
        .replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
        .replace("REWE Markt GmbH", "Bäckerei Müller")
    )
    read = read_export(camt.encode("latin-1"), filename="statement.xml", mapping=CsvMapping())
    assert read.transactions[0].merchant == "Bäckerei Müller"


# European exports ----------------------------------------------------------------------------

SPARKASSE = """\
"Auftragskonto";"Buchungstag";"Valutadatum";"Buchungstext";"Verwendungszweck";\
"Beguenstigter/Zahlungspflichtiger";"Kontonummer";"BLZ";"Betrag";"Waehrung";"Info"
"DE1250";"28.11.26";"28.11.26";"KARTENZAHLUNG";"REWE SAGT DANKE";"REWE Markt GmbH";\
"DE8937";"COBADEFFXXX";"-37,80";"EUR";"Umsatz gebucht"
"DE1250";"01.11.26";"01.11.26";"DAUERAUFTRAG";"Miete November";"Hausverwaltung Schmidt";\
"DE8937";"COBADEFFXXX";"-1.150,00";"EUR";"Umsatz gebucht"
"DE1250";"30.10.26";"30.10.26";"GUTSCHRIFT";"Gehalt Oktober";"Acme GmbH";\
"DE8937";"COBADEFFXXX";"3.100,00";"EUR";"Umsatz gebucht"
"""
ING_NL = """\
"Datum","Naam / Omschrijving","Rekening","Tegenrekening","Code","Af Bij","Bedrag (EUR)",\
"Mutatiesoort","Mededelingen"
"20261128","Albert Heijn 1234","NL20INGB","","BA","Af","23,45","Betaalautomaat","Pasvolgnr 001"
"20261125","Werkgever BV","NL20INGB","NL91ABNA","OV","Bij","2500,00","Overschrijving","Salaris"
"""
FRENCH = "Date;Libellé;Débit;Crédit\n28/11/2026;CB BOULANGERIE PAUL;4,50;\n"
FRENCH += "25/11/2026;VIR SALAIRE;;2\u202f500,00\n"  # thousands by a narrow no-break space
TINKOFF = """\
Дата операции;Дата платежа;Номер карты;Статус;Сумма операции;Валюта операции;Категория;Описание
28.11.2026 17:03:00;28.11.2026;*1234;OK;-450,00;RUB;Супермаркеты;Пятёрочка
25.11.2026 09:00:00;25.11.2026;;OK;85000,00;RUB;Пополнения;Зарплата
"""


@pytest.mark.parametrize(
    ("text", "encoding", "rows", "note"),
    [
        (
            SPARKASSE,
            "cp1252",
            [
                ("2026-11-28", "debit", "37.80", "EUR", "REWE Markt GmbH"),
                ("2026-11-01", "debit", "1150.00", "EUR", "Hausverwaltung Schmidt"),
                ("2026-10-30", "credit", "3100.00", "EUR", "Acme GmbH"),
            ],
            "fields separated by semicolons",
        ),
        (
            ING_NL,
            "utf-8",
            [
                ("2026-11-28", "debit", "23.45", "EUR", "Albert Heijn 1234"),
                ("2026-11-25", "credit", "2500.00", "EUR", "Werkgever BV"),
            ],
            "amounts in EUR, as 'Bedrag (EUR)' says",
        ),
        (
            FRENCH,
            "utf-8",
            [
                ("2026-11-28", "debit", "4.50", "USD", "CB BOULANGERIE PAUL"),
                ("2026-11-25", "credit", "2500.00", "USD", "VIR SALAIRE"),
            ],
            "amounts read with a decimal comma (1.234,56)",
        ),
        (
            TINKOFF,
            "cp1251",
            [
                ("2026-11-28", "debit", "450.00", "RUB", "Пятёрочка"),
                ("2026-11-25", "credit", "85000.00", "RUB", "Зарплата"),
            ],
            "dates read as %d.%m.%Y %H:%M:%S",
        ),
    ],
    ids=["sparkasse", "ing-nl", "french", "tinkoff"],
)
def test_european_exports_read_with_their_delimiters_decimal_commas_and_names(
    text: str, encoding: str, rows: list[tuple[str, ...]], note: str
) -> None:
    """Semicolons between fields, "-1.150,00", two-digit years, a direction column of Af and
    Bij, headers in German, Dutch, French and Russian, and the file's own code page: before,
    the Sparkasse file had "no date column", and a decimal comma was read as thousands
    ("-37,80" as 3,780)."""
    result = read_export(
        text.encode(encoding), filename="export.csv", mapping=CsvMapping(), account_id="acct"
    )
    assert [
        (
            t.timestamp.date().isoformat(),
            t.direction.value,
            str(t.amount),
            t.currency,
            t.merchant,
        )
        for t in result.transactions
    ] == rows
    assert result.detected is not None and note in result.detected.notes


def test_amounts_that_write_the_decimal_mark_both_ways_are_refused_with_the_options() -> None:
    text = 'Date,Description,Amount\n2026-11-28,A,"-1,50"\n2026-11-27,B,-2.30\n'
    with pytest.raises(ImportErrors) as refused:
        read(text)
    message = refused.value.errors[0].message
    assert "'-2.30' and '-1,50'" in message and "--decimal-comma" in message
    # Said outright, a file's grouping points read as such.
    rows, _ = read("Date,Description,Amount\n2026-11-28,SOFA,-1.500\n", decimal_comma=True)
    assert rows[0][2] == Decimal("1500")
    rows, _ = read("Date,Description,Amount\n2026-11-28,SOFA,-1.500\n")
    assert rows[0][2] == Decimal("1.5"), "nothing says otherwise: a point is a decimal point"


def test_an_ofx_amount_may_use_a_decimal_comma() -> None:
    text = (EXPORTS / "bank.ofx").read_text().replace("<TRNAMT>-48.21", "<TRNAMT>-48,21")
    result = read_export(text, filename="bank.ofx", mapping=CsvMapping())
    assert str(result.transactions[0].amount) == "48.21"


# Spreadsheets --------------------------------------------------------------------------------


def _workbook(rows: list[list[object]]) -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_export_reads_by_the_csv_rules_with_its_cells_meaning_kept() -> None:
    from datetime import datetime

    data = _workbook(
        [
            ["Kontoauszug", "DE1250"],  # an account block above the header
            [],
            ["Buchungsdatum", "Empfänger", "Verwendungszweck", "Betrag (EUR)"],
            [datetime(2026, 11, 28), "REWE Markt GmbH", "REWE SAGT DANKE", -37.8],
            [datetime(2026, 11, 27, 17, 3), "Пятёрочка", "Karte", -0.1 - 0.2],
            [datetime(2026, 11, 1), "Acme GmbH", "Gehalt", 3100],
        ]
    )
    result = read_export(data, filename="umsaetze.xlsx", mapping=CsvMapping(), account_id="giro")
    assert result.kind == "xlsx"
    assert [
        (t.timestamp.isoformat(), t.direction.value, str(t.amount), t.currency, t.merchant)
        for t in result.transactions
    ] == [
        ("2026-11-28T00:00:00+00:00", "debit", "37.8", "EUR", "REWE Markt GmbH"),
        ("2026-11-27T17:03:00+00:00", "debit", "0.3", "EUR", "Пятёрочка"),
        ("2026-11-01T00:00:00+00:00", "credit", "3100", "EUR", "Acme GmbH"),
    ]


def test_a_damaged_or_bombed_xlsx_is_refused_with_the_reason() -> None:
    import io
    import zipfile

    with pytest.raises(ImportErrors) as refused:
        read_export(b"PK\x03\x04 junk", filename="x.xlsx", mapping=CsvMapping(), account_id="a")
    assert "not readable as an .xlsx workbook" in refused.value.errors[0].message
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 1024 * 1024))
    assert len(bomb.getvalue()) < 1024 * 1024  # what an upload limit would let through
    with pytest.raises(ImportErrors) as refused:
        read_export(bomb.getvalue(), filename="x.xlsx", mapping=CsvMapping(), account_id="a")
    assert "unpacks to 314,572,800 bytes" in refused.value.errors[0].message
