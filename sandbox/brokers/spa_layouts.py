"""The ``spa`` app's rendering in the three redesigns self-healing extraction is measured on.

Each layout's script is the shared head of ``spa_assets`` (the terms modal, the API
client, the search form, the error line), the ``LAYOUT_COMMON`` pieces below, that
layout's ``search``/``person`` renderers, and the shared tail (the opt-out, routing).
What the crawler's page actions click or wait on stays as v1 renders it in every
layout, as QA hooks survive redesigns: the terms button, ``[data-qa-result]`` on each
listing, ``[data-qa-person]`` on the profile, ``[data-qa-empty]`` with v1's "No results
found for ..." text, ``[data-qa-error]`` (its "Not found" and block texts come from the
API) and the "Show more results" button. Everything inside a listing or a profile changes:

- ``structural``: results in a table (``<th>`` headers, one ``<tr>`` per person, the name
  cell links the profile, columns reordered), the profile a definition list with reworded,
  reordered labels (``Age:``, ``Phones``, ``Emails``, ``Possible relatives``, ``Address
  history``, ``AKA``: one ``<dt>`` and a ``<dd>`` per value, rows with nothing on record left
  out); no ``data-qa-*`` inside them; new class names (styled-components-like ``sc-1a2b3c``).
- ``jsonld``: the data in schema.org JSON-LD the app writes into ``<head>``: an ``ItemList``
  of ``ListItem {url, item: Person}`` (the card's teaser: name, the age range as
  ``description``, current then past places as ``address``, masked ``telephone``/``email``)
  beside a bare ``<ul>`` of name links; the profile a ``Person`` (``alternateName``,
  ``telephone``, ``email``, ``address`` as ``PostalAddress`` parts, ``relatedTo``) beside an
  ``<h1>``, "40 years old" and "Lives in City, ST".
- ``partial``: v1's markup with every other class name renamed, a few wrappers added (the
  results list, the profile's sections), "Phone numbers" reworded to "Phones", and these
  ``data-qa-*`` renamed (the rest kept): ``age`` -> ``age-range`` and ``past-locations`` ->
  ``previous-locations`` on results, ``person-age`` -> ``age``, ``alias`` -> ``aka``,
  ``phone`` -> ``tel``, ``relative`` -> ``relation`` on profiles.
"""

from __future__ import annotations

# class names the redesigns use beside spa_assets.CLASS_NAMES
LAYOUT_CLASS_NAMES = [
    "grid",
    "summary",
    "resultRow",
    "profileLink",
    "places",
    "record",
    "fullName",
    "facts",
    "label",
    "value",
    "panel",
    "details",
]

# the same button, empty text and cursor paging as v1 (a heal must find the same pages)
LAYOUT_COMMON = r"""  function moreButton() {
    return h("button", {cls: "more", type: "button", "data-qa-load-more": "", hidden: ""}, ["Show more results"]);
  }

  function emptyNote(q) {
    return h("div", {cls: "empty", "data-qa-empty": ""}, ["No results found for " + q]);
  }

  function places(list) {
    return h("ul", {cls: "places"}, list.map(function (place) { return h("li", {}, [place]); }));
  }

  // one API page per click of "Show more results", as v1 loads them
  function paged(q, loc, more, show) {
    var cursor = null;
    function load() {
      more.disabled = true;
      var url = "/api/search?q=" + encodeURIComponent(q) + "&loc=" + encodeURIComponent(loc) +
        (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      api(url).then(function (data) {
        show(data);
        cursor = data.next_cursor;
        more.hidden = !cursor;
        more.disabled = false;
      }).catch(failed);
    }
    more.addEventListener("click", load);
    load();
  }

  function loading() {
    mount([form("", ""), h("p", {cls: "count"}, ["Loading..."])]);
  }

"""

STRUCTURAL = r"""  function resultRow(r) {
    function td(children) { return h("td", {cls: "cell"}, children); }
    return h("tr", {cls: "resultRow", "data-qa-result": r.id}, [
      td([h("a", {cls: "profileLink", href: r.url}, [r.name])]),
      td([r.location]), td([r.age_range]), td([r.phone]), td([r.email]),
      td([r.past_locations.length ? places(r.past_locations) : null])]);
  }

  function search(q, loc) {
    var rows = h("tbody", {});
    var columns = ["Name", "Lives in", "Age", "Phone", "Email", "Previously lived in"];
    var table = h("table", {cls: "grid"}, [
      h("thead", {}, [h("tr", {}, columns.map(function (t) { return h("th", {scope: "col"}, [t]); }))]), rows]);
    var summary = h("p", {cls: "summary"}, ["Searching..."]);
    var more = moreButton();
    mount([form(q, loc), summary, table, more]);
    paged(q, loc, more, function (data) {
      summary.textContent = q + ": " + data.total + (data.total === 1 ? " match" : " matches");
      data.results.forEach(function (r) { rows.appendChild(resultRow(r)); });
      if (!data.total) table.replaceWith(emptyNote(q));
    });
  }

  function person(id) {
    loading();
    api("/api/person/" + id).then(function (p) {
      document.title = p.name + " - Peoplescope";
      var facts = [
        ["Age:", [String(p.age)]],
        ["Phones", p.phones.map(function (x) { return x.number; })],
        ["Emails", p.emails],
        ["Possible relatives", p.relatives.map(function (r) {
          return r.url ? h("a", {href: r.url}, [r.name]) : r.name;
        })],
        ["Address history", p.addresses.map(function (a) { return a.full; })],
        ["AKA", p.aliases]];
      var list = h("dl", {cls: "facts"});
      facts.forEach(function (fact) {
        if (!fact[1].length) return;  // only what is on record
        list.appendChild(h("dt", {cls: "label"}, [fact[0]]));
        fact[1].forEach(function (value) { list.appendChild(h("dd", {cls: "value"}, [value])); });
      });
      mount([form("", ""), h("article", {cls: "record", "data-qa-person": p.id}, [
        h("h1", {cls: "fullName"}, [p.name]), list])]);
    }).catch(failed);
  }

"""

JSONLD = r"""  function absolute(path) {
    return new URL(path, location.href).href;
  }

  // schema.org data in <head>, as a server-side-rendering framework's head manager writes it
  function structuredData(data) {
    var block = document.head.querySelector("script[type='application/ld+json']");
    if (!block) block = document.head.appendChild(h("script", {type: "application/ld+json"}));
    block.textContent = JSON.stringify(Object.assign({"@context": "https://schema.org"}, data));
  }

  function place(text) {  // "City, ST"
    var at = text.lastIndexOf(", ");
    return {"@type": "PostalAddress", addressLocality: text.slice(0, at), addressRegion: text.slice(at + 2)};
  }

  function teaserPerson(r) {
    var person = {"@type": "Person", name: r.name, description: r.age_range,
                  address: [r.location].concat(r.past_locations).map(place)};
    if (r.phone) person.telephone = r.phone;
    if (r.email) person.email = r.email;
    return person;
  }

  function search(q, loc) {
    var list = h("ul", {});
    var found = h("p", {}, ["Searching..."]);
    var more = moreButton();
    var items = [];
    mount([form(q, loc), h("h1", {}, ["People named " + q]), found, list, more]);
    paged(q, loc, more, function (data) {
      found.textContent = data.total + (data.total === 1 ? " person found" : " people found");
      data.results.forEach(function (r) {
        list.appendChild(h("li", {"data-qa-result": r.id}, [h("a", {href: r.url}, [r.name])]));
        items.push({"@type": "ListItem", position: items.length + 1, url: absolute(r.url), item: teaserPerson(r)});
      });
      structuredData({"@type": "ItemList", numberOfItems: data.total, itemListElement: items});
      if (!data.total) list.replaceWith(emptyNote(q));
    });
  }

  function person(id) {
    loading();
    api("/api/person/" + id).then(function (p) {
      document.title = p.name + " - Peoplescope";
      var data = {"@type": "Person", url: absolute("/person/" + p.id), name: p.name,
                  givenName: p.first_name, familyName: p.last_name};
      if (p.middle_name) data.additionalName = p.middle_name;
      if (p.aliases.length) data.alternateName = p.aliases;
      if (p.phones.length) data.telephone = p.phones.map(function (x) { return x.number; });
      if (p.emails.length) data.email = p.emails;
      if (p.addresses.length) data.address = p.addresses.map(function (a) {
        return {"@type": "PostalAddress", streetAddress: a.street, addressLocality: a.city,
                addressRegion: a.state, postalCode: a.zip};
      });
      if (p.relatives.length) data.relatedTo = p.relatives.map(function (r) {
        return r.url ? {"@type": "Person", name: r.name, url: absolute(r.url)} : {"@type": "Person", name: r.name};
      });
      structuredData(data);
      var home = p.addresses[0];
      mount([form("", ""), h("article", {"data-qa-person": p.id}, [
        h("h1", {}, [p.name]), h("p", {}, [p.age + " years old"]),
        home ? h("p", {}, ["Lives in " + home.city + ", " + home.state]) : null])]);
    }).catch(failed);
  }

"""

PARTIAL = r"""  function card(r) {
    return h("article", {cls: "card", "data-qa-result": r.id}, [
      h("a", {cls: "name", href: r.url, "data-qa-name": ""}, [r.name]),
      h("div", {cls: "meta"}, [
        h("span", {cls: "age", "data-qa-age-range": ""}, [r.age_range]),
        h("span", {cls: "location", "data-qa-location": ""}, [r.location])]),
      r.past_locations.length ? h("ul", {cls: "past", "data-qa-previous-locations": ""},
        r.past_locations.map(function (place) { return h("li", {}, [place]); })) : null,
      r.phone ? h("span", {cls: "phone", "data-qa-phone": ""}, [r.phone]) : null,
      r.email ? h("span", {cls: "email", "data-qa-email": ""}, [r.email]) : null]);
  }

  function search(q, loc) {
    var list = h("div", {cls: "list", "data-qa-results": ""});
    var panel = h("section", {cls: "panel"}, [list]);
    var count = h("p", {cls: "count", "data-qa-count": ""}, ["Searching..."]);
    var more = moreButton();
    mount([form(q, loc), count, panel, more]);
    paged(q, loc, more, function (data) {
      count.textContent = data.total + (data.total === 1 ? " result for " : " results for ") + q;
      data.results.forEach(function (r) { list.appendChild(card(r)); });
      if (!data.total) panel.replaceWith(emptyNote(q));
    });
  }

  function section(key, title, items) {
    return h("section", {cls: "section", "data-qa-section": key}, [
      h("h2", {cls: "heading"}, [title]),
      items.length ? h("ul", {cls: "list"}, items) : h("p", {cls: "empty"}, ["None on record"])]);
  }

  function person(id) {
    loading();
    api("/api/person/" + id).then(function (p) {
      document.title = p.name + " - Peoplescope";
      var li = function (attrs, children) { return h("li", attrs, children); };
      var sections = [
        section("aliases", "Also known as", p.aliases.map(function (a) { return li({"data-qa-aka": ""}, [a]); })),
        section("addresses", "Addresses", p.addresses.map(function (a) {
          return li({"data-qa-address": a.current ? "current" : "past", "data-qa-since": String(a.since)}, [a.full]);
        })),
        section("phones", "Phones", p.phones.map(function (x) {
          return li({"data-qa-tel": "", "data-qa-phone-type": x.type}, [x.number]);
        })),
        section("emails", "Email addresses", p.emails.map(function (e) { return li({"data-qa-email": ""}, [e]); })),
        section("relatives", "Relatives", p.relatives.map(function (r) {
          return li({"data-qa-relation": ""}, [r.url ? h("a", {href: r.url}, [r.name]) : r.name]);
        }))];
      var head = h("header", {cls: "head"}, [
        h("h1", {cls: "title", "data-qa-person-name": ""}, [p.name]),
        h("span", {cls: "age", "data-qa-age": ""}, ["Age " + p.age])]);
      mount([form("", ""), h("article", {cls: "profile", "data-qa-person": p.id},
        [head, h("div", {cls: "details"}, sections)])]);
    }).catch(failed);
  }

"""

RENDERERS = {"structural": STRUCTURAL, "jsonld": JSONLD, "partial": PARTIAL}
