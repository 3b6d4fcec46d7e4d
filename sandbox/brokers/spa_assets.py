"""The ``spa`` site's HTML shell and its script (plain JavaScript, no build step, no external resources).

The script is served per layout: the class-name map is baked into it, as a
bundler bakes CSS-module hashes into a bundle, so a redesign (layout v2)
changes every class name while the ``data-qa-*`` attributes stay put.
The opt-out (``/optout``) is part of the same script and needs no terms accepted.
The script is the shared head, a layout's renderers (v1 and v2 here; structural,
jsonld and partial in ``spa_layouts``) and the shared tail; v1 and v2 are served
exactly as they were before the other layouts existed.
"""

from __future__ import annotations

import hashlib
import json

from sandbox.brokers.spa_layouts import LAYOUT_CLASS_NAMES, LAYOUT_COMMON, RENDERERS

CLASS_NAMES = [
    "overlay",
    "modal",
    "button",
    "app",
    "form",
    "input",
    "count",
    "list",
    "card",
    "name",
    "meta",
    "age",
    "location",
    "past",
    "phone",
    "email",
    "more",
    "empty",
    "error",
    "wrap",
    "table",
    "row",
    "cell",
    "profile",
    "head",
    "title",
    "section",
    "heading",
]


def class_names(layout: str) -> dict[str, str]:
    """Deterministic hashed class names: ``css-1a2b3c`` (v1, emotion-like), ``_x4f9e21a`` (v2 and jsonld,
    CSS modules), ``sc-1a2b3c`` (structural, styled-components-like); partial keeps every other v1 name
    and renames the rest in v1's style."""
    if layout in ("v1", "v2"):
        names = {}
        for name in CLASS_NAMES:
            digest = hashlib.sha1(f"{layout}:{name}".encode()).hexdigest()
            names[name] = f"css-{digest[:6]}" if layout == "v1" else f"_{name[:1]}{digest[:7]}"
        return names
    v1 = class_names("v1")
    names = {}
    for index, name in enumerate(CLASS_NAMES + LAYOUT_CLASS_NAMES):
        digest = hashlib.sha1(f"{layout}:{name}".encode()).hexdigest()
        if layout == "partial":
            names[name] = v1[name] if name in v1 and index % 2 == 0 else f"css-{digest[:6]}"
        else:
            names[name] = f"sc-{digest[:6]}" if layout == "structural" else f"_{name[:1]}{digest[:7]}"
    return names


def shell_html() -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<title>Peoplescope - People Search</title></head>"
        "<body><div id='root'></div><noscript>Peoplescope requires JavaScript.</noscript>"
        "<script src='/static/app.js' defer></script></body></html>"
    )


def app_js(layout: str, tos_cookie: str, tos_version: str) -> str:
    constants = (
        f"var LAYOUT = {json.dumps(layout)}, CX = {json.dumps(class_names(layout))},\n"
        f"      TOS_COOKIE = {json.dumps(tos_cookie)}, TOS = {json.dumps(tos_version)};\n"
    )
    render = LAYOUT_COMMON + RENDERERS[layout] if layout in RENDERERS else RENDER_V1_V2
    return '(function () {\n  "use strict";\n  ' + constants + SCRIPT_HEAD + render + SCRIPT_TAIL + "})();\n"


SCRIPT_HEAD = r"""
  var root = document.getElementById("root");

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "cls") el.className = CX[attrs[key]];
      else el.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return el;
  }

  function mount(nodes) {
    root.replaceChildren(h("main", {cls: "app"}, nodes));
  }

  function injectStyle() {
    var css = "." + CX.overlay + "{position:fixed;inset:0;background:rgba(0,0,0,.6);display:flex;" +
      "align-items:center;justify-content:center}." + CX.modal + "{background:#fff;padding:24px;max-width:420px}" +
      "." + CX.card + "{border:1px solid #ddd;padding:12px;margin:8px 0}." + CX.table + "{border-collapse:collapse}" +
      "." + CX.cell + "{border-bottom:1px solid #ddd;padding:6px}." + CX.card + " span{margin-right:12px}";
    document.head.appendChild(h("style", {}, [css]));
  }

  function accepted() {
    return localStorage.getItem("tos") === TOS &&
      document.cookie.split("; ").indexOf(TOS_COOKIE + "=" + TOS) !== -1;
  }

  function modal(then) {
    var button = h("button", {cls: "button", type: "button", "data-qa-tos-accept": ""}, ["I Agree"]);
    var overlay = h("div", {cls: "overlay", role: "dialog", "aria-modal": "true", "data-qa-tos-modal": ""}, [
      h("div", {cls: "modal"}, [
        h("h2", {}, ["Before you continue"]),
        h("p", {}, ["You agree not to use this information to make decisions about consumer credit, " +
                    "employment, insurance or tenant screening, or for any unlawful purpose."]),
        button])]);
    button.addEventListener("click", function () {
      localStorage.setItem("tos", TOS);
      document.cookie = TOS_COOKIE + "=" + TOS + "; path=/; max-age=31536000; SameSite=Lax";
      overlay.remove();
      then();
    });
    document.body.appendChild(overlay);
  }

  function api(path) {
    var init = {headers: {"X-Requested-With": "app", "Accept": "application/json"}, credentials: "same-origin"};
    return fetch(path, init).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        return body;
      });
    });
  }

  function failed(error) {
    mount([form("", ""), h("div", {cls: "error", "data-qa-error": ""}, [error.message])]);
  }

  function form(q, loc) {
    return h("form", {cls: "form", action: "/search", method: "get", "data-qa-search-form": ""}, [
      h("input", {cls: "input", name: "q", value: q, placeholder: "First and last name"}),
      h("input", {cls: "input", name: "loc", value: loc, placeholder: "City, State"}),
      h("button", {cls: "button", type: "submit"}, ["Search"])]);
  }

"""

# layouts v1 and v2: cards or a table of results, the profile in sections
RENDER_V1_V2 = r"""  function pastList(r) {
    if (!r.past_locations.length) return null;
    return h("ul", {cls: "past", "data-qa-past-locations": ""}, r.past_locations.map(function (place) {
      return h("li", {}, [place]);
    }));
  }

  function optional(value, key) {
    var attrs = {cls: key};
    attrs["data-qa-" + key] = "";
    return value ? h("span", attrs, [value]) : null;
  }

  function card(r) {
    return h("article", {cls: "card", "data-qa-result": r.id}, [
      h("a", {cls: "name", href: r.url, "data-qa-name": ""}, [r.name]),
      h("div", {cls: "meta"}, [
        h("span", {cls: "age", "data-qa-age": ""}, [r.age_range]),
        h("span", {cls: "location", "data-qa-location": ""}, [r.location])]),
      pastList(r), optional(r.phone, "phone"), optional(r.email, "email")]);
  }

  function row(r) {
    function cell(children) { return h("td", {cls: "cell"}, [h("div", {cls: "wrap"}, children)]); }
    return h("tr", {cls: "row", "data-qa-result": r.id}, [
      cell([h("a", {cls: "name", href: r.url, "data-qa-name": ""}, [r.name])]),
      cell([h("span", {cls: "location", "data-qa-location": ""}, [r.location]), pastList(r)]),
      cell([h("span", {cls: "age", "data-qa-age": ""}, [r.age_range])]),
      cell([optional(r.phone, "phone") || "-"]),
      cell([optional(r.email, "email") || "-"])]);
  }

  function search(q, loc) {
    var list = LAYOUT === "v1" ? h("div", {cls: "list", "data-qa-results": ""}) : h("tbody", {});
    var container = list;
    if (LAYOUT !== "v1") {
      var head = h("tr", {}, ["Name", "Location", "Age", "Phone", "Email"].map(function (t) {
        return h("th", {}, [t]);
      }));
      var table = h("table", {cls: "table", "data-qa-results": ""}, [h("thead", {}, [head]), list]);
      container = h("div", {cls: "wrap"}, [table]);
    }
    var count = h("p", {cls: "count", "data-qa-count": ""}, ["Searching..."]);
    var more = h("button", {cls: "more", type: "button", "data-qa-load-more": "", hidden: ""}, ["Show more results"]);
    var cursor = null;
    mount([form(q, loc), count, container, more]);
    function load() {
      more.disabled = true;
      var url = "/api/search?q=" + encodeURIComponent(q) + "&loc=" + encodeURIComponent(loc) +
        (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      api(url).then(function (data) {
        count.textContent = data.total + (data.total === 1 ? " result for " : " results for ") + q;
        data.results.forEach(function (r) { list.appendChild(LAYOUT === "v1" ? card(r) : row(r)); });
        if (!data.total) {
          container.replaceWith(h("div", {cls: "empty", "data-qa-empty": ""}, ["No results found for " + q]));
        }
        cursor = data.next_cursor;
        more.hidden = !cursor;
        more.disabled = false;
      }).catch(failed);
    }
    more.addEventListener("click", load);
    load();
  }

  function section(key, title, items) {
    return h("section", {cls: "section", "data-qa-section": key}, [
      h("h2", {cls: "heading"}, [title]),
      items.length ? h("ul", {cls: "list"}, items) : h("p", {cls: "empty"}, ["None on record"])]);
  }

  function person(id) {
    mount([form("", ""), h("p", {cls: "count"}, ["Loading..."])]);
    api("/api/person/" + id).then(function (p) {
      document.title = p.name + " - Peoplescope";
      var li = function (attrs, children) { return h("li", attrs, children); };
      var sections = {
        aliases: section("aliases", "Also known as", p.aliases.map(function (a) {
          return li({"data-qa-alias": ""}, [a]);
        })),
        addresses: section("addresses", "Addresses", p.addresses.map(function (a) {
          return li({"data-qa-address": a.current ? "current" : "past", "data-qa-since": String(a.since)}, [a.full]);
        })),
        phones: section("phones", "Phone numbers", p.phones.map(function (x) {
          return li({"data-qa-phone": "", "data-qa-phone-type": x.type}, [x.number]);
        })),
        emails: section("emails", "Email addresses", p.emails.map(function (e) {
          return li({"data-qa-email": ""}, [e]);
        })),
        relatives: section("relatives", "Relatives", p.relatives.map(function (r) {
          return li({"data-qa-relative": ""}, [r.url ? h("a", {href: r.url}, [r.name]) : r.name]);
        }))
      };
      var order = LAYOUT === "v1" ? ["aliases", "addresses", "phones", "emails", "relatives"]
                                  : ["emails", "phones", "relatives", "addresses", "aliases"];
      var head = h("header", {cls: "head"}, [
        h("h1", {cls: "title", "data-qa-person-name": ""}, [p.name]),
        h("span", {cls: "age", "data-qa-person-age": ""}, ["Age " + p.age])]);
      var wrap = function (node) { return LAYOUT === "v1" ? node : h("div", {cls: "wrap"}, [node]); };
      mount([form("", ""), h("article", {cls: "profile", "data-qa-person": p.id},
        [wrap(head)].concat(order.map(function (key) { return wrap(sections[key]); })))]);
    }).catch(failed);
  }

"""

SCRIPT_TAIL = r"""  function post(path, body) {
    var headers = {"X-Requested-With": "app", "Accept": "application/json", "Content-Type": "application/json"};
    var init = {method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify(body)};
    return fetch(path, init).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  // the opt-out: search yourself, "This is me" on your listing, an e-mail, submit (a JSON POST)
  function optout() {
    var name = h("input", {cls: "input", name: "name", placeholder: "First and last name",
                           "data-qa-optout-name": ""});
    var state = h("input", {cls: "input", name: "state", placeholder: "State (e.g. IL)", maxlength: "2",
                            "data-qa-optout-state": ""});
    var find = h("button", {cls: "button", type: "button", "data-qa-optout-find": ""}, ["Find my listing"]);
    var list = h("div", {cls: "list", "data-qa-optout-results": ""});
    var picked = h("p", {cls: "meta", "data-qa-optout-selected": ""});
    var email = h("input", {cls: "input", type: "email", name: "email", placeholder: "Your e-mail",
                            "data-qa-optout-email": ""});
    var submit = h("button", {cls: "button", type: "button", "data-qa-optout-submit": ""}, ["Submit opt-out request"]);
    var request = h("div", {cls: "form", "data-qa-optout-request": "", hidden: ""}, [picked, email, submit]);
    var message = h("p", {cls: "error", "data-qa-optout-message": ""});
    var chosen = null;
    mount([h("h1", {}, ["Opt out of Peoplescope"]),
           h("p", {}, ["Find your listing, select it and tell us where to confirm the request."]),
           h("div", {cls: "form", "data-qa-optout-search": ""}, [name, state, find]), list, request, message]);
    find.addEventListener("click", function () {
      message.textContent = "";
      list.replaceChildren();
      request.hidden = true;
      chosen = null;
      api("/api/optout/search?name=" + encodeURIComponent(name.value) + "&state=" + encodeURIComponent(state.value))
        .then(function (data) {
          if (!data.total) list.appendChild(h("p", {cls: "empty", "data-qa-optout-empty": ""}, ["No listings found"]));
          data.results.forEach(function (r) {
            var select = h("button", {cls: "button", type: "button", "data-qa-optout-select": ""}, ["This is me"]);
            select.addEventListener("click", function () {
              chosen = r;
              picked.textContent = "Selected: " + r.name + ", " + r.location;
              request.hidden = false;
            });
            list.appendChild(h("article", {cls: "card", "data-qa-optout-result": r.id, "data-url": r.url}, [
              h("span", {cls: "name"}, [r.name]), h("span", {cls: "age"}, [r.age_range]),
              h("span", {cls: "location"}, [r.location]), select]));
          });
        }).catch(function (error) { message.textContent = error.message; });
    });
    submit.addEventListener("click", function () {
      if (!chosen) return;
      submit.disabled = true;
      post("/api/optout", {id: chosen.id, email: email.value}).then(function () {
        mount([h("h1", {}, ["Opt out of Peoplescope"]), h("p", {cls: "meta", "data-qa-optout-done": ""},
          ["Your opt-out request has been received. Your listing will be removed within 24 hours."])]);
      }).catch(function (error) {
        submit.disabled = false;
        message.textContent = error.message;
      });
    });
  }

  function route() {
    var params = new URLSearchParams(location.search);
    var match = location.pathname.match(/^\/person\/([A-Za-z0-9]{11})$/);
    if (location.pathname === "/search") search(params.get("q") || "", params.get("loc") || "");
    else if (match) person(match[1]);
    else if (location.pathname === "/optout") optout();
    else mount([h("h1", {}, ["Find anyone"]), form("", "")]);
  }

  injectStyle();
  if (location.pathname === "/optout" || accepted()) route(); else modal(route);  // no terms to opt out
"""
