"""Bank export parsing: CSV mappings, OFX, stable ids, and errors that name row and column."""

from decimal import Decimal

import pytest

from services.ingest.imports import (
    AccountRequired,
    CsvMapping,
    ImportErrors,
    parse_csv,
    parse_export,
    parse_ofx,
)

SIGNED = """date,description,amount,category
2026-03-01,WHOLE FOODS #12,-54.20,Groceries
03/02/2026,ACME PAYROLL,2500.00,Income
2026-03-02,STARBUCKS,-4.50,
2026-03-02,STARBUCKS,-4.50,
"""

SPLIT = """Posted,Details,Money out,Money in
01/03/2026,TESCO STORES,"1,204.99",
02/03/2026,REFUND AMAZON,,12.00
"""

OFX = """OFXHEADER:100
DATA:OFXSGML
<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>EUR
<BANKACCTFROM><BANKID>123<ACCTID>DE-991<ACCTTYPE>CHECKING</BANKACCTFROM>
<BANKTRANLIST>
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20260305120000<TRNAMT>-23.40<FITID>F1<NAME>REWE MARKT
<MEMO>Card 1234
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20260306<TRNAMT>100.00<FITID>F2<NAME>GEHALT
</BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>
"""


def test_signed_amounts_and_identical_rows_get_distinct_stable_ids() -> None:
    txs = parse_csv(SIGNED, CsvMapping(category="category"), account_id="checking")
    assert [(t.direction.value, t.amount) for t in txs] == [
        ("debit", Decimal("54.20")),
        ("credit", Decimal("2500.00")),
        ("debit", Decimal("4.50")),
        ("debit", Decimal("4.50")),
    ]
    assert txs[0].category == "Groceries" and txs[2].category is None
    assert txs[2].transaction_id != txs[3].transaction_id
    assert txs[2].transaction_id.endswith("-0") and txs[3].transaction_id.endswith("-1")
    again = parse_csv(SIGNED, CsvMapping(category="category"), account_id="checking")
    assert [t.transaction_id for t in again] == [t.transaction_id for t in txs]


def test_an_overlapping_export_yields_the_same_ids() -> None:
    first = parse_csv(SIGNED, CsvMapping(), account_id="checking")
    header, *lines = SIGNED.strip().splitlines()
    overlapping = "\n".join([header, *lines[1:], "2026-03-04,SHELL OIL,-40.00,"]) + "\n"
    second = parse_csv(overlapping, CsvMapping(), account_id="checking")
    assert {t.transaction_id for t in first[1:]} <= {t.transaction_id for t in second}


def test_debit_and_credit_columns_with_day_first_dates() -> None:
    mapping = CsvMapping(
        date="Posted",
        amount=None,
        debit="Money out",
        credit="Money in",
        description="Details",
        date_format="%d/%m/%Y",
    )
    txs = parse_csv(SPLIT, mapping, account_id="uk", currency="GBP")
    assert [(t.timestamp.day, t.timestamp.month) for t in txs] == [(1, 3), (2, 3)]
    assert [(t.direction.value, t.amount) for t in txs] == [
        ("debit", Decimal("1204.99")),
        ("credit", Decimal("12.00")),
    ]
    assert txs[0].currency == "GBP"


def test_errors_name_row_and_column() -> None:
    bad = "date,description,amount\n2026-03-01,OK,-1.00\nnot-a-date,X,-2.00\n2026-03-03,Y,lots\n"
    with pytest.raises(ImportErrors) as info:
        parse_csv(bad, CsvMapping(), account_id="a")
    assert [(e.row, e.column) for e in info.value.errors] == [(3, "date"), (4, "amount")]
    with pytest.raises(ImportErrors) as missing:
        parse_csv(bad, CsvMapping(amount="value"), account_id="a")
    assert missing.value.errors[0].column == "value"
    with pytest.raises(ImportErrors) as precise:
        parse_csv("date,description,amount\n2026-03-01,X,-1.234\n", CsvMapping(), account_id="a")
    assert precise.value.errors[0].column == "amount"


def test_ofx() -> None:
    txs, account = parse_ofx(OFX)
    assert account == "DE-991"
    assert [(t.transaction_id, t.direction.value, t.amount, t.currency) for t in txs] == [
        ("DE-991:F1", "debit", Decimal("23.40"), "EUR"),
        ("DE-991:F2", "credit", Decimal("100.00"), "EUR"),
    ]
    assert txs[0].merchant == "REWE MARKT" and txs[0].timestamp.hour == 12


def test_a_banks_ids_are_unique_per_account_so_two_accounts_never_collide() -> None:
    checking, _ = parse_ofx(OFX, account_id="checking")
    savings, _ = parse_ofx(OFX, account_id="savings")
    assert not {t.transaction_id for t in checking} & {t.transaction_id for t in savings}
    assert [t.transaction_id for t in parse_ofx(OFX, account_id="checking")[0]] == [
        t.transaction_id for t in checking
    ], "the same file of the same account gets the same ids: re-imports stay idempotent"
    with_ids = "id,date,description,amount\n7,2026-03-01,BAKERY,-3.20\n"
    mapping = CsvMapping(transaction_id="id")
    ids = {parse_csv(with_ids, mapping, account_id=a)[0].transaction_id for a in ("card", "joint")}
    assert ids == {"card:7", "joint:7"}
    long_account = "a" * 64
    (hashed,) = parse_csv(with_ids, mapping, account_id=long_account)
    assert hashed.transaction_id.startswith("imp-") and len(hashed.transaction_id) <= 64


def test_one_parser_for_every_door_tells_ofx_from_csv_by_name_or_content() -> None:
    default = CsvMapping()
    # OFX saved under a name that says nothing: the content gives it away
    by_content = parse_export(OFX, filename="download.txt", mapping=default)
    assert [(t.account_id, t.currency) for t in by_content] == [("DE-991", "EUR")] * 2
    overridden = parse_export(OFX, filename="x.qfx", mapping=default, account_id="joint")
    assert {t.account_id for t in overridden} == {"joint"}

    with pytest.raises(AccountRequired):
        parse_export(SIGNED, filename="export.csv", mapping=default)
    csv = parse_export(SIGNED, filename="export.csv", mapping=default, account_id="checking")
    assert len(csv) == 4 and {t.currency for t in csv} == {"USD"}
    credits_negative = parse_export(
        SIGNED,
        filename="export.csv",
        mapping=CsvMapping(negative_is_debit=False),
        account_id="card",
        currency="GBP",
    )
    assert credits_negative[0].direction.value == "credit"
    assert {t.currency for t in credits_negative} == {"GBP"}


@pytest.mark.parametrize(
    ("csv_text", "mapping", "column"),
    [
        ("date,description,amount\n2026-03-01,X,1e999999999\n", "signed", "amount"),
        ("date,description,amount\n2026-03-01,X,-1e999999\n", "signed", "amount"),
        ("date,description,amount\n2026-03-01,X,12345678901234567.00\n", "signed", "amount"),
        ("date,description,amount\n2026-03-01,X,Infinity\n", "signed", "amount"),
        ('date,description,amount\n2026-03-01,"' + "x" * 200_000 + '",-1.00\n', "signed", "file"),
    ],
)
def test_hostile_csv_rows_are_row_errors_never_crashes(
    csv_text: str, mapping: str, column: str
) -> None:
    chosen = (
        CsvMapping(amount=None, debit="debit", credit="credit")
        if mapping == "split"
        else CsvMapping()
    )
    with pytest.raises(ImportErrors) as info:
        parse_csv(csv_text, chosen, account_id="a")
    assert column in {e.column for e in info.value.errors}


def test_a_short_row_with_debit_and_credit_columns_reads_the_missing_cell_as_empty() -> None:
    text = "date,description,debit,credit\n2026-03-01,BAKERY,3.20\n"
    (tx,) = parse_csv(text, CsvMapping(amount=None, debit="debit", credit="credit"), account_id="a")
    assert (tx.direction.value, tx.amount) == ("debit", Decimal("3.20"))


def test_imports_have_a_row_cap() -> None:
    text = "date,description,amount\n" + "2026-03-01,X,-1.00\n" * 11
    assert len(parse_csv(text, CsvMapping(), account_id="a", max_rows=11)) == 11
    with pytest.raises(ImportErrors) as info:
        parse_csv(text, CsvMapping(), account_id="a", max_rows=10)
    assert "more than 10 rows" in info.value.errors[0].message


@pytest.mark.parametrize(
    ("text", "decimal_comma", "amount"),
    [
        ("-1,234.56", False, "-1234.56"),
        ("-1.234,56", True, "-1234.56"),
        ("1 234,56", True, "1234.56"),
        ("1\u00a0234,56", True, "1234.56"),
        ("CHF 1'234.50", False, "1234.50"),
        ("-4,50 €", True, "-4.50"),
        ("€-12,00", True, "-12.00"),
        ("-$12.00", False, "-12.00"),
        ("12,50 EUR", True, "12.50"),
        ("kr 1 234,50", True, "1234.50"),
        ("(4.50)", False, "-4.50"),
        ("4.50-", False, "-4.50"),
        ("\u221212.50", False, "-12.50"),
        ("0,5", True, "0.5"),
    ],
)
def test_amounts_as_banks_print_them(text: str, decimal_comma: bool, amount: str) -> None:
    from services.ingest.amounts import parse_amount

    assert str(parse_amount(text, decimal_comma)) == amount


@pytest.mark.parametrize("text", ["1e5", "--5", "(-5)", "4.50 CR", "", "1" * 16, "0.1234567"])
def test_what_is_not_a_plain_amount_is_refused(text: str) -> None:
    from services.ingest.amounts import parse_amount

    with pytest.raises(ValueError, match="not an amount"):
        parse_amount(text)
