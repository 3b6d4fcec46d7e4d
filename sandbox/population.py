"""A deterministic synthetic population: the people the simulated sites list.

No real persons: names are drawn from common-name lists, phone numbers from the
fictional 555-01xx range, e-mails from reserved example domains. The same seed
always gives the same people. Namesakes collide on purpose (several John
Smiths in different cities and ages) so that matching is genuinely hard.
Ages are relative to a fixed reference date so the data never drifts.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from functools import cache

DEFAULT_SEED = 20261124
DEFAULT_SIZE = 2000
REFERENCE_DATE = dt.date(2026, 11, 1)

# (first name, gender, nicknames)
FIRST_NAMES = [
    ("James", "m", ["Jim", "Jimmy"]),
    ("John", "m", ["Jack", "Johnny"]),
    ("Robert", "m", ["Bob", "Rob"]),
    ("Michael", "m", ["Mike"]),
    ("William", "m", ["Bill", "Will"]),
    ("David", "m", ["Dave"]),
    ("Richard", "m", ["Rick", "Dick"]),
    ("Joseph", "m", ["Joe"]),
    ("Thomas", "m", ["Tom"]),
    ("Charles", "m", ["Charlie", "Chuck"]),
    ("Christopher", "m", ["Chris"]),
    ("Daniel", "m", ["Dan", "Danny"]),
    ("Matthew", "m", ["Matt"]),
    ("Anthony", "m", ["Tony"]),
    ("Mark", "m", []),
    ("Donald", "m", ["Don"]),
    ("Steven", "m", ["Steve"]),
    ("Paul", "m", []),
    ("Andrew", "m", ["Andy", "Drew"]),
    ("Joshua", "m", ["Josh"]),
    ("Kenneth", "m", ["Ken", "Kenny"]),
    ("Kevin", "m", []),
    ("Brian", "m", []),
    ("George", "m", []),
    ("Timothy", "m", ["Tim"]),
    ("Ronald", "m", ["Ron"]),
    ("Edward", "m", ["Ed", "Eddie"]),
    ("Jason", "m", []),
    ("Jeffrey", "m", ["Jeff"]),
    ("Ryan", "m", []),
    ("Jacob", "m", ["Jake"]),
    ("Gary", "m", []),
    ("Nicholas", "m", ["Nick"]),
    ("Eric", "m", []),
    ("Jonathan", "m", ["Jon"]),
    ("Stephen", "m", ["Steve"]),
    ("Larry", "m", []),
    ("Justin", "m", []),
    ("Scott", "m", []),
    ("Benjamin", "m", ["Ben"]),
    ("Mary", "f", []),
    ("Patricia", "f", ["Pat", "Patty"]),
    ("Jennifer", "f", ["Jen", "Jenny"]),
    ("Linda", "f", []),
    ("Elizabeth", "f", ["Liz", "Beth", "Betty"]),
    ("Barbara", "f", ["Barb"]),
    ("Susan", "f", ["Sue"]),
    ("Jessica", "f", ["Jess"]),
    ("Sarah", "f", []),
    ("Karen", "f", []),
    ("Lisa", "f", []),
    ("Nancy", "f", []),
    ("Betty", "f", []),
    ("Margaret", "f", ["Maggie", "Peggy"]),
    ("Sandra", "f", ["Sandy"]),
    ("Ashley", "f", []),
    ("Kimberly", "f", ["Kim"]),
    ("Emily", "f", []),
    ("Donna", "f", []),
    ("Michelle", "f", []),
    ("Carol", "f", []),
    ("Amanda", "f", ["Mandy"]),
    ("Dorothy", "f", ["Dot"]),
    ("Melissa", "f", ["Mel"]),
    ("Deborah", "f", ["Debbie", "Deb"]),
    ("Stephanie", "f", ["Steph"]),
    ("Rebecca", "f", ["Becky"]),
    ("Sharon", "f", []),
    ("Laura", "f", []),
    ("Cynthia", "f", ["Cindy"]),
    ("Kathleen", "f", ["Kathy", "Kate"]),
    ("Amy", "f", []),
    ("Angela", "f", ["Angie"]),
    ("Helen", "f", []),
    ("Anna", "f", []),
    ("Brenda", "f", []),
    ("Pamela", "f", ["Pam"]),
    ("Nicole", "f", ["Nikki"]),
    ("Emma", "f", []),
    ("Samantha", "f", ["Sam"]),
    ("Katherine", "f", ["Kathy", "Katie"]),
    ("Christine", "f", ["Chris"]),
]

LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
]

# (city, state, zip prefix, area code)
CITIES = [
    ("Springfield", "IL", "627", "217"),
    ("Chicago", "IL", "606", "312"),
    ("Peoria", "IL", "616", "309"),
    ("Springfield", "MO", "658", "417"),
    ("St. Louis", "MO", "631", "314"),
    ("Kansas City", "MO", "641", "816"),
    ("Columbus", "OH", "432", "614"),
    ("Cleveland", "OH", "441", "216"),
    ("Dayton", "OH", "454", "937"),
    ("Austin", "TX", "787", "512"),
    ("Houston", "TX", "770", "713"),
    ("Dallas", "TX", "752", "214"),
    ("Portland", "OR", "972", "503"),
    ("Salem", "OR", "973", "503"),
    ("Portland", "ME", "041", "207"),
    ("Denver", "CO", "802", "303"),
    ("Boulder", "CO", "803", "303"),
    ("Phoenix", "AZ", "850", "602"),
    ("Tucson", "AZ", "857", "520"),
    ("Madison", "WI", "537", "608"),
    ("Milwaukee", "WI", "532", "414"),
    ("Atlanta", "GA", "303", "404"),
    ("Savannah", "GA", "314", "912"),
    ("Raleigh", "NC", "276", "919"),
    ("Charlotte", "NC", "282", "704"),
    ("Nashville", "TN", "372", "615"),
    ("Memphis", "TN", "381", "901"),
    ("Seattle", "WA", "981", "206"),
    ("Spokane", "WA", "992", "509"),
    ("Boise", "ID", "837", "208"),
    ("Omaha", "NE", "681", "402"),
    ("Lincoln", "NE", "685", "402"),
    ("Albany", "NY", "122", "518"),
    ("Buffalo", "NY", "142", "716"),
    ("Richmond", "VA", "232", "804"),
    ("Arlington", "VA", "222", "703"),
    ("Orlando", "FL", "328", "407"),
    ("Tampa", "FL", "336", "813"),
    ("Reno", "NV", "895", "775"),
    ("Albuquerque", "NM", "871", "505"),
]

STREETS = [
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Pine Rd",
    "Washington Ave",
    "Lake Dr",
    "Park Pl",
    "Hillcrest Rd",
    "Sunset Blvd",
    "Church St",
    "Mill Rd",
    "River Rd",
    "Highland Ave",
]
CARRIERS = ["Verizon Wireless", "AT&T Mobility", "T-Mobile USA", "Lumen", "Frontier", "Bandwidth.com"]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com"]
PHONE_TYPES = ["Wireless", "Wireless", "Landline", "VoIP"]
# Popular names are far more common: the first entries of each list get the highest weights.
COLLIDING_NAMES = [("John", "Smith", 7), ("Mary", "Johnson", 5), ("James", "Brown", 5), ("Jennifer", "Garcia", 4)]


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    zip: str
    since: int  # year moved in

    def line(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zip}"


@dataclass(frozen=True)
class Phone:
    number: str  # ten digits, fictional 555-01xx range
    type: str
    carrier: str

    def formatted(self) -> str:
        return f"({self.number[:3]}) {self.number[3:6]}-{self.number[6:]}"


@dataclass
class Person:
    id: str
    first_name: str
    middle_name: str
    last_name: str
    gender: str
    birth_year: int
    birth_month: int
    aliases: list[str] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    relatives: list[str] = field(default_factory=list)

    @property
    def age(self) -> int:
        before_birthday = REFERENCE_DATE.month < self.birth_month
        return REFERENCE_DATE.year - self.birth_year - int(before_birthday)

    @property
    def full_name(self) -> str:
        middle = f" {self.middle_name[0]}." if self.middle_name else ""
        return f"{self.first_name}{middle} {self.last_name}"

    @property
    def current(self) -> Address:
        return self.addresses[0]


def _typo(rng: random.Random, name: str) -> str:
    i = rng.randrange(1, len(name) - 1)
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :]  # swap two letters


class Population:
    def __init__(self, seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE):
        self.seed, self.size = seed, size
        rng = random.Random(seed)
        self.people: list[Person] = [self._person(rng, i) for i in range(size)]
        self._by_id = {p.id: p for p in self.people}
        self._link_relatives(rng)

    def _name(self, rng: random.Random, index: int) -> tuple[str, str, str, list[str]]:
        if index < sum(n for *_, n in COLLIDING_NAMES):  # guaranteed namesakes first
            for first, last, count in COLLIDING_NAMES:
                if index < count:
                    gender, nicks = next((g, n) for f, g, n in FIRST_NAMES if f == first)
                    return first, last, gender, nicks
                index -= count
        weights = [1 / (rank + 3) for rank in range(len(FIRST_NAMES))]
        first, gender, nicks = rng.choices(FIRST_NAMES, weights)[0]
        last = rng.choices(LAST_NAMES, [1 / (rank + 2) for rank in range(len(LAST_NAMES))])[0]
        return first, last, gender, nicks

    def _person(self, rng: random.Random, index: int) -> Person:
        first, last, gender, nicks = self._name(rng, index)
        middle = rng.choice([f for f, g, _ in FIRST_NAMES if g == gender]) if rng.random() < 0.7 else ""
        birth_year = rng.randint(REFERENCE_DATE.year - 90, REFERENCE_DATE.year - 19)
        aliases = [f"{nicks[0]} {last}"] if nicks else []
        maiden = ""
        if gender == "f" and rng.random() < 0.35:
            maiden = rng.choice([n for n in LAST_NAMES if n != last])
            aliases.append(f"{first} {maiden}")
        if rng.random() < 0.15:
            aliases.append(f"{first} {_typo(rng, last)}")
        home = rng.choice(CITIES)
        moves = min(10, 1 + int(rng.expovariate(0.6)))
        cities = [home] + [rng.choice(CITIES) for _ in range(moves - 1)]
        year = REFERENCE_DATE.year - rng.randint(0, 8)
        addresses = []
        for city, state, zip_prefix, _ in cities:
            street = f"{rng.randint(100, 9899)} {rng.choice(STREETS)}"
            addresses.append(Address(street, city, state, f"{zip_prefix}{rng.randint(0, 99):02d}", year))
            year = max(birth_year + 18, year - rng.randint(1, 7))
        phones = [
            Phone(f"{rng.choice(cities)[3]}5550{rng.randint(100, 199)}", rng.choice(PHONE_TYPES), rng.choice(CARRIERS))
            for _ in range(rng.randint(1, 3))
        ]
        handles = [f"{first}.{last}", f"{first[0]}{last}", f"{first}{birth_year % 100}", f"{maiden or last}.{first}"]
        emails = [
            f"{rng.choice(handles).lower()}{rng.randint(1, 999)}@{rng.choice(EMAIL_DOMAINS)}"
            for _ in range(rng.choices([0, 1, 2, 3], [1, 4, 3, 1])[0])
        ]
        return Person(
            id=f"P{index:06d}",
            first_name=first,
            middle_name=middle,
            last_name=last,
            gender=gender,
            birth_year=birth_year,
            birth_month=rng.randint(1, 12),
            aliases=aliases,
            addresses=addresses,
            phones=phones,
            emails=sorted(set(emails)),
        )

    def _link_relatives(self, rng: random.Random) -> None:
        """Relatives share a last name (or a maiden name) and are linked both ways."""
        by_last: dict[str, list[Person]] = {}
        for person in self.people:
            by_last.setdefault(person.last_name, []).append(person)
        for person in self.people:
            family = [p for p in by_last[person.last_name] if p.id != person.id]
            for relative in rng.sample(family, min(len(family), rng.randint(0, 3))):
                if relative.id not in person.relatives and len(relative.relatives) < 6:
                    person.relatives.append(relative.id)
                    relative.relatives.append(person.id)

    def get(self, person_id: str) -> Person | None:
        return self._by_id.get(person_id)

    def search(self, first: str, last: str, state: str | None = None, city: str | None = None) -> list[Person]:
        """People whose name or an alias is first + last (case-insensitive), optionally
        with a current or past address in that state / city."""
        wanted = f"{first} {last}".casefold().split()
        found = []
        for person in self.people:
            names = [f"{person.first_name} {person.last_name}", *person.aliases]
            if not any(n.casefold().split() == wanted for n in names):
                continue
            if state and all(a.state != state.upper() for a in person.addresses):
                continue
            if city and all(a.city.casefold() != city.casefold() for a in person.addresses):
                continue
            found.append(person)
        return found


@cache
def default_population(seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE) -> Population:
    return Population(seed, size)


def ground_truth(person: Person) -> dict[str, str]:
    """Which listing pages are this person's: {site id: detail page path} for every
    simulated broker that lists them (paths are relative to the site's base URL)."""
    from sandbox.brokers import fastpeople, radaris, spa, thatsthem, truepeople  # they import this module

    found = {}
    for site in (fastpeople, truepeople, spa, radaris, thatsthem):
        if (path := site.listing_url(person)) is not None:
            found[site.SITE_ID] = path
    return found
