from collections import Counter

from sandbox.population import Population, default_population


def test_same_seed_same_people_other_seed_other_people():
    a, b, c = Population(seed=7, size=300), Population(seed=7, size=300), Population(seed=8, size=300)
    assert a.people == b.people
    assert a.people != c.people


def test_namesakes_collide_across_cities_and_ages():
    population = default_population()
    smiths = population.search("John", "Smith")
    assert len(smiths) >= 5
    assert len({p.current.city for p in smiths}) >= 4 and len({p.age for p in smiths}) >= 4
    names = Counter((p.first_name, p.last_name) for p in population.people)
    assert sum(1 for n in names.values() if n > 1) >= 100


def test_people_are_complete_and_fictional():
    population = default_population()
    assert len(population.people) >= 2000
    for person in population.people:
        assert 1 <= len(person.addresses) <= 10 and 1 <= len(person.phones) <= 3
        assert all(p.number[3:7] == "5550" for p in person.phones)  # fictional 555-01xx numbers
        assert all(e.rsplit("@", 1)[1].endswith(("example.com", "example.net", "example.org")) for e in person.emails)
        assert 18 <= person.age <= 91


def test_relatives_link_both_ways_and_aliases_are_searchable():
    population = default_population()
    for person in population.people:
        for relative_id in person.relatives:
            assert person.id in population.get(relative_id).relatives
    aliased = next(p for p in population.people if p.aliases)
    first, last = aliased.aliases[0].split(" ", 1)
    assert aliased in population.search(first, last)


def test_search_filters_on_any_address_in_state_or_city():
    population = default_population()
    person = next(p for p in population.people if len(p.addresses) > 2)
    past = person.addresses[-1]
    assert person in population.search(person.first_name, person.last_name, state=past.state.lower())
    assert person in population.search(person.first_name, person.last_name, city=past.city.upper())
    assert population.get("P999999") is None
