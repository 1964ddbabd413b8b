"""Merchant catalogue of the demo generator: realistic names as banks print them, by category.

Each merchant has the raw strings a statement shows (store numbers, processor prefixes, city
suffixes), so normalization and clustering meet the mess they meet in real exports.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Merchant:
    name: str
    category: str
    raw: tuple[str, ...]
    channel: str = "card"
    typical: float = 20.0  # median amount
    spread: float = 0.35  # log-normal sigma


# A new habit every persona takes up three weeks before the end: the drift the demo plants.
NEW_HABIT = [
    Merchant("Equinox", "Fitness", ("EQUINOX #114 NEW YORK", "EQUINOX FITNESS CLUB"), typical=30),
    Merchant("Juice Press", "Fitness", ("JUICE PRESS #22", "JUICEPRESS.COM"), typical=11),
    Merchant("ClassPass", "Fitness", ("CLASSPASS* BOOKING", "CLASSPASS INC"), typical=22),
]

GROCERIES = [
    Merchant(
        "Whole Foods Market",
        "Groceries",
        ("WHOLEFDS MKT #10234", "WHOLE FOODS MARKET 1021 NEW YORK NY", "WFM #552"),
        typical=64,
    ),
    Merchant(
        "Trader Joe's",
        "Groceries",
        ("TRADER JOE'S #552 QPS", "TRADER JOES #118 BROOKLYN NY"),
        typical=48,
    ),
    Merchant(
        "Safeway", "Groceries", ("SAFEWAY #1783", "SAFEWAY STORE 0921 OAKLAND CA"), typical=55
    ),
    Merchant("Kroger", "Groceries", ("KROGER #423", "KROGER FUEL CTR 0423"), typical=58),
    Merchant("Aldi", "Groceries", ("ALDI 72014", "ALDI #16 CHICAGO IL"), typical=38),
    Merchant(
        "Costco",
        "Groceries",
        ("COSTCO WHSE #0113", "COSTCO WHOLESALE 482"),
        typical=140,
        spread=0.4,
    ),
]
DINING = [
    Merchant(
        "Starbucks",
        "Dining",
        ("STARBUCKS STORE 09871", "SQ *STARBUCKS #2231", "STARBUCKS 800-782-7282"),
        typical=6.5,
        spread=0.3,
    ),
    Merchant("Chipotle", "Dining", ("CHIPOTLE 1123", "CHIPOTLE ONLINE"), typical=13),
    Merchant(
        "McDonald's", "Dining", ("MCDONALD'S F3421", "MCDONALDS 22184 JERSEY CITY NJ"), typical=9
    ),
    Merchant("Sweetgreen", "Dining", ("SWEETGREEN NOMAD", "SQ *SWEETGREEN 0142"), typical=15),
    Merchant(
        "Blue Bottle Coffee",
        "Dining",
        ("SQ *BLUE BOTTLE COFFEE", "TST* BLUE BOTTLE COFFEE"),
        typical=7,
    ),
    Merchant(
        "Joe's Pizza", "Dining", ("TST* JOES PIZZA BROADWAY", "JOE'S PIZZA NEW YORK NY"), typical=22
    ),
    Merchant(
        "DoorDash", "Dining", ("DOORDASH*THAI VILLA", "DD *DOORDASH SUSHI"), "online", typical=34
    ),
    Merchant(
        "Uber Eats",
        "Dining",
        ("UBER *EATS PENDING", "UBER EATS HELP.UBER.COM"),
        "online",
        typical=31,
    ),
]
TRANSPORT = [
    Merchant(
        "Uber",
        "Transport",
        ("UBER *TRIP HELP.UBER.COM", "UBER TRIP 8005928996"),
        "online",
        typical=19,
    ),
    Merchant(
        "Lyft", "Transport", ("LYFT *RIDE THU 4PM", "LYFT *RIDE SAT 11PM"), "online", typical=17
    ),
    Merchant(
        "Shell",
        "Transport",
        ("SHELL OIL 57444", "SHELL SERVICE STATION 1182"),
        typical=45,
        spread=0.25,
    ),
    Merchant("Chevron", "Transport", ("CHEVRON 0091234", "CHEVRON #207"), typical=47, spread=0.25),
    Merchant(
        "MTA", "Transport", ("MTA*NYCT PAYGO", "MTA VENDING MACHINE"), typical=2.9, spread=0.05
    ),
]
SHOPPING = [
    Merchant(
        "Amazon",
        "Shopping",
        ("AMZN MKTP US*2K4", "AMAZON.COM*RT7Y1", "AMZN Mktp US*HX2"),
        "online",
        typical=36,
        spread=0.8,
    ),
    Merchant(
        "Target",
        "Shopping",
        ("TARGET 00012345", "TARGET T-1234 BROOKLYN NY"),
        typical=52,
        spread=0.6,
    ),
    Merchant(
        "Walmart", "Shopping", ("WAL-MART #1234", "WALMART.COM 8009256278"), typical=47, spread=0.6
    ),
    Merchant(
        "Best Buy",
        "Shopping",
        ("BEST BUY 00004321", "BESTBUY.COM 888BESTBUY"),
        typical=120,
        spread=0.7,
    ),
    Merchant("IKEA", "Shopping", ("IKEA BROOKLYN", "IKEA US ONLINE"), typical=95, spread=0.6),
]
HEALTH = [
    Merchant("CVS Pharmacy", "Health", ("CVS/PHARMACY #01234", "CVS PHARMACY 2231"), typical=18),
    Merchant("Walgreens", "Health", ("WALGREENS #9921", "WALGREENS STORE 771"), typical=16),
]
ENTERTAINMENT = [
    Merchant("AMC Theatres", "Entertainment", ("AMC 34TH ST 14", "AMC ONLINE"), typical=28),
    Merchant(
        "Ticketmaster",
        "Entertainment",
        ("TICKETMASTER *EVENT", "TM *TICKETMASTER"),
        "online",
        typical=110,
        spread=0.5,
    ),
    Merchant(
        "Steam",
        "Entertainment",
        ("STEAMGAMES.COM 4259522", "STEAM PURCHASE"),
        "online",
        typical=25,
        spread=0.5,
    ),
]
TRAVEL = [
    Merchant(
        "Delta Air Lines",
        "Travel",
        ("DELTA AIR 0062345678", "DELTA AIR LINES ATLANTA"),
        "online",
        typical=420,
        spread=0.4,
    ),
    Merchant(
        "United Airlines",
        "Travel",
        ("UNITED 0162345678", "UNITED AIRLINES HOUSTON"),
        "online",
        typical=380,
        spread=0.4,
    ),
    Merchant(
        "Marriott", "Travel", ("MARRIOTT DOWNTOWN", "MARRIOTT HOTELS 1123"), typical=260, spread=0.4
    ),
    Merchant(
        "Airbnb", "Travel", ("AIRBNB * HMQ2X3", "AIRBNB HMXY12"), "online", typical=340, spread=0.5
    ),
    Merchant("Hertz", "Travel", ("HERTZ RENT-A-CAR", "HERTZ #0123"), typical=190, spread=0.4),
]
SUBSCRIPTIONS = [
    Merchant(
        "Netflix",
        "Subscriptions",
        ("NETFLIX.COM", "NETFLIX.COM LOS GATOS CA"),
        "online",
        typical=15.49,
        spread=0.0,
    ),
    Merchant(
        "Spotify",
        "Subscriptions",
        ("SPOTIFY USA", "Spotify P1A2B3C4"),
        "online",
        typical=11.99,
        spread=0.0,
    ),
    Merchant(
        "Apple iCloud",
        "Subscriptions",
        ("APPLE.COM/BILL", "APPLE.COM/BILL 866-712-7753"),
        "online",
        typical=2.99,
        spread=0.0,
    ),
    Merchant(
        "New York Times",
        "Subscriptions",
        ("NYTIMES *NYTIMES", "NYT DIGITAL SUBSCR"),
        "online",
        typical=17.0,
        spread=0.0,
    ),
    Merchant(
        "Planet Fitness",
        "Subscriptions",
        ("PLANET FITNESS CLUB", "PF CLUB FEES"),
        typical=24.99,
        spread=0.0,
    ),
    Merchant(
        "Disney+",
        "Subscriptions",
        ("DISNEY PLUS", "DISNEYPLUS.COM"),
        "online",
        typical=13.99,
        spread=0.0,
    ),
]
UTILITIES = [
    Merchant(
        "Con Edison",
        "Utilities",
        ("CON ED OF NY PAYMENT", "CONED BILL PAY"),
        "transfer",
        typical=95,
        spread=0.3,
    ),
    Merchant(
        "Verizon Wireless",
        "Utilities",
        ("VZWRLSS*APOCC VISN", "VERIZON WIRELESS PAYMENTS"),
        "online",
        typical=72,
        spread=0.05,
    ),
    Merchant(
        "Comcast Xfinity",
        "Utilities",
        ("COMCAST CABLE COMM", "XFINITY MOBILE"),
        "online",
        typical=89,
        spread=0.02,
    ),
    Merchant(
        "National Grid",
        "Utilities",
        ("NATIONAL GRID NY", "NATL GRID BILL"),
        "transfer",
        typical=70,
        spread=0.35,
    ),
]
RENT = [
    Merchant(
        "Greystar",
        "Rent",
        ("GREYSTAR PROPERTY MGMT", "GREYSTAR RENT PAYMENT"),
        "transfer",
        typical=2100,
        spread=0.0,
    ),
    Merchant(
        "Equity Residential",
        "Rent",
        ("EQUITY RESIDENTIAL ACH", "EQR RENT"),
        "transfer",
        typical=2400,
        spread=0.0,
    ),
]
EMPLOYERS = [
    Merchant(
        "Acme Corp",
        "Income",
        ("ACME CORP PAYROLL", "ACME CORP DIR DEP"),
        "transfer",
        typical=3200,
        spread=0.0,
    ),
    Merchant(
        "Globex",
        "Income",
        ("GLOBEX INC PAYROLL PPD", "GLOBEX DIRECT DEP"),
        "transfer",
        typical=2800,
        spread=0.0,
    ),
    Merchant(
        "Initech",
        "Income",
        ("INITECH PAYROLL", "INITECH DIR DEP"),
        "transfer",
        typical=3600,
        spread=0.0,
    ),
]
# Unknown merchants the anomaly injector uses: never part of anyone's routine.
SUSPICIOUS = [
    Merchant(
        "LuxWatch Outlet",
        "Shopping",
        ("LUXWATCH OUTLET ONLINE", "LXW*LUXWATCH"),
        "online",
        typical=900,
        spread=0.3,
    ),
    Merchant(
        "QuickGift Cards",
        "Shopping",
        ("QUICKGIFT*CARDS", "QGC DIGITAL"),
        "online",
        typical=250,
        spread=0.3,
    ),
    Merchant(
        "ElectroHub",
        "Shopping",
        ("ELECTROHUB STORE 77", "ELECTROHUB.NET"),
        "online",
        typical=1100,
        spread=0.3,
    ),
    Merchant(
        "NightOwl Bar", "Dining", ("NIGHTOWL BAR & LOUNGE", "SQ *NIGHTOWL"), typical=180, spread=0.3
    ),
]
CARD_TESTERS = [
    Merchant(
        "DonateNow",
        "Charity",
        ("DONATENOW*GIVE", "DNTNW CHARITY"),
        "online",
        typical=1.0,
        spread=0.4,
    ),
    Merchant(
        "AppStore Verify",
        "Shopping",
        ("APPSTORE VERIFY", "APP VRFY*"),
        "online",
        typical=0.99,
        spread=0.3,
    ),
]
FOREIGN = [
    (
        "GB",
        "GBP",
        Merchant(
            "Pret A Manger", "Dining", ("PRET A MANGER LONDON", "PRET A MANGER KINGS X"), typical=9
        ),
    ),
    (
        "FR",
        "EUR",
        Merchant(
            "Galeries Lafayette",
            "Shopping",
            ("GALERIES LAFAYETTE PARIS", "GAL LAFAYETTE HAUSSMANN"),
            typical=240,
            spread=0.5,
        ),
    ),
    (
        "RO",
        "RON",
        Merchant(
            "Altex", "Shopping", ("ALTEX ROMANIA SA", "ALTEX BUCURESTI"), typical=650, spread=0.4
        ),
    ),
    (
        "NG",
        "NGN",
        Merchant(
            "Jumia",
            "Shopping",
            ("JUMIA NG LAGOS", "JUMIA ONLINE NG"),
            "online",
            typical=420,
            spread=0.4,
        ),
    ),
    (
        "JP",
        "JPY",
        Merchant(
            "Bic Camera",
            "Shopping",
            ("BIC CAMERA SHINJUKU", "BICCAMERA YURAKUCHO"),
            typical=520,
            spread=0.4,
        ),
    ),
]
TRAVEL_ABROAD = [
    (
        "GB",
        "GBP",
        Merchant("Tesco", "Groceries", ("TESCO STORES 2231 LONDON", "TESCO EXPRESS"), typical=25),
    ),
    (
        "FR",
        "EUR",
        Merchant("Monoprix", "Groceries", ("MONOPRIX PARIS 11", "MONOP' BASTILLE"), typical=30),
    ),
    (
        "ES",
        "EUR",
        Merchant("Mercadona", "Groceries", ("MERCADONA BARCELONA", "MERCADONA 1123"), typical=28),
    ),
]


def catalogue() -> list[Merchant]:
    """Every merchant the generator can use, routine and anomalous, at home and abroad."""
    groups = [
        GROCERIES,
        DINING,
        TRANSPORT,
        SHOPPING,
        HEALTH,
        ENTERTAINMENT,
        TRAVEL,
        SUBSCRIPTIONS,
        UTILITIES,
        RENT,
        EMPLOYERS,
        SUSPICIOUS,
        CARD_TESTERS,
    ]
    abroad = [merchant for _, _, merchant in FOREIGN + TRAVEL_ABROAD]
    return [merchant for group in groups for merchant in group] + abroad
