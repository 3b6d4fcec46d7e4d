"""Opt-out flows: the schema and semantic checks of ``opt_out.steps`` (one line naming the key and the
reason), parsing into typed steps, templates, CAPTCHA markers, and the five sites' flows loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from scrapy.http import HtmlResponse

from crawler.extraction import DefinitionError, load_definitions
from crawler.extraction.definitions import load_definition_text
from crawler.extraction.schema import OPT_OUT_STEPS, SCHEMA
from crawler.removal import flows
from crawler.removal.captcha import captcha_on
from crawler.spider_args import PersonQuery

pytestmark = pytest.mark.unit

FULL_FLOW = [
    {"navigate": {"url": "/control/privacy", "moved": {"page": "/privacy", "link": {"css": "a#optout::attr(href)"}}}},
    {"click": {"css": "a.remove::attr(href)"}},
    {"fill": {"url": "{listing_url}", "email": "{email}", "name": "{full_name|title}"}},
    {"submit": {"form": "form#removal"}},
    {"expect": {"text": "Check your e-mail"}},
    {"email_confirmation": {"from": "fastpeople", "link": "/removal/confirm/", "within_hours": 0.5}},
    {"expect": [{"css": "p.done"}, {"text": "/removed/i"}]},
    {"human": {"kind": "phone", "instructions": "Call the number on the page", "url": "{opt_out_url}"}},
]

EC = {"from": "x", "link": "/c/"}


def definition(steps, render="http", **opt_out):
    raw = {
        "id": "draft",
        "name": "Draft",
        "base_url": "http://draft.test",
        "render": render,
        "search": [{"requires": ["first_name", "last_name"], "url": "/s/{first_name|slug}"}],
        "list": {"items": {"css": "div.card"}, "fields": {"url": {"css": "a::attr(href)"}}},
        "detail": {"fields": {"full_name": {"css": "h1::text"}}},
        "opt_out": {"url": "/removal", "processing_days": 2, "steps": steps, **opt_out},
    }
    return load_definition_text(json.dumps(raw), "draft.yaml")


def load_error(steps, **kwargs) -> str:
    with pytest.raises(DefinitionError) as error:
        definition(steps, **kwargs)
    return str(error.value)


def test_every_step_kind_parses_into_its_typed_step():
    flow = flows.flow_of(definition(FULL_FLOW, captcha={"css": "div.captcha"}))
    assert flow.url == "http://draft.test/removal" and flow.render == "http" and flow.processing_days == 2
    kinds = [type(step) for step in flow.steps]
    assert kinds == [
        flows.Navigate,
        flows.Click,
        flows.Fill,
        flows.Submit,
        flows.Expect,
        flows.EmailConfirmation,
        flows.Expect,
        flows.Human,
    ]
    navigate, click, fill, submit, expect, confirm, expect2, human = flow.steps
    assert navigate.moved_page == "/privacy" and navigate.moved_link == flows.Selector(css="a#optout::attr(href)")
    assert click.target.css == "a.remove::attr(href)"
    assert dict(fill.fields)["email"] == "{email}"
    assert submit.form == "form#removal" and submit.submission and not fill.submission
    assert confirm == flows.EmailConfirmation("fastpeople", "/removal/confirm/", 0.5)
    assert len(expect2.marker) == 2 and expect.marker == ({"text": "Check your e-mail"},)
    assert human.task == "phone" and human.url == "{opt_out_url}"
    assert flow.captcha == ({"css": "div.captcha"},)
    assert flow.submission_after(0) == 3 and flow.submission_after(4) is None
    assert flow.last_navigate(3) == 0


def test_the_flow_digest_follows_its_content():
    first = flows.flow_of(definition(FULL_FLOW))
    assert first.sha256 == flows.flow_of(definition(FULL_FLOW)).sha256
    changed = [*FULL_FLOW[:4], {"expect": {"text": "Thanks"}}]
    assert flows.flow_of(definition(changed)).sha256 != first.sha256


def test_a_site_without_steps_has_no_flow():
    raw = definition(FULL_FLOW).raw
    del raw["opt_out"]["steps"]
    assert flows.flow_of(load_definition_text(json.dumps(raw), "draft.yaml")) is None


def test_templates_fill_in_the_listing_the_person_and_the_tagged_address():
    flow = flows.flow_of(definition(FULL_FLOW))
    person = PersonQuery("Zebulon", "Quixley", city="Springfield", state="IL", email="own@example.net")
    values = flows.flow_values(flow, "http://draft.test/p/zq-1?x=2", person, "optout+abc@example.org", "abc")
    assert values["listing_path"] == "/p/zq-1?x=2"
    assert values["email"] == "optout+abc@example.org"  # never the person's own address
    assert flows.fill_in("{first_name|lower} {last_name|upper} {state}", values) == "zebulon QUIXLEY IL"
    assert flows.url_of(flow, "{opt_out_url}", values) == "http://draft.test/removal"
    assert flows.url_of(flow, "/privacy", values) == "http://draft.test/privacy"
    assert flows.url_of(flow, "https://other.test/x", values) == "https://other.test/x"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"navigate": "/r"}, {"jump": {}}], "opt_out.steps.1: unknown key 'jump'"),
        ([{"navigate": "/r", "fill": {"a": "b"}}], "opt_out.steps.0: expected exactly one key"),
        ([{"navigate": "/r"}, {"fill": {"a": "{phone}"}}, {"submit": {}}], "unknown template field 'phone'"),
        ([{"navigate": "/r"}, {"fill": {"a": "{email|shout}"}}, {"submit": {}}], "unknown template filter 'shout'"),
        ([{"fill": {"a": "{email}"}}, {"submit": {}}], "opt_out.steps.0.fill: needs a page"),
        ([{"navigate": "/r"}, {"fill": {"a": "{email}"}}], "opt_out.steps.1.fill: an http flow fills a form for a"),
        (
            [{"navigate": "/r"}, {"fill": {"u": "{listing_url}"}}, {"submit": {}}, {"email_confirmation": EC}],
            "opt_out.steps.3.email_confirmation: no earlier step gives the broker the address {email}",
        ),
        ([{"navigate": "/r"}, {"email_confirmation": EC}], "email_confirmation: must follow the submission"),
        ([{"navigate": "/r"}, {"submit": {}}, {"submit": {}}], "opt_out.steps.2.submit: a flow makes one submission"),
        (
            [{"human": {"kind": "phone", "instructions": "Call about {full_name}"}}],
            "opt_out.steps.0.human.instructions: unknown template field 'full_name'",
        ),
        ([{"human": {"kind": "fax", "instructions": "x"}}], "opt_out.steps.0.human.kind: expected one of"),
        ([{"navigate": "removal"}], "opt_out.steps.0.navigate: expected a path starting with '/'"),
        ([{"navigate": "/r"}, {"expect": {"text": "/[unclosed/"}}], "opt_out.steps.1.expect.text"),
        ([{"email_confirmation": {"from": "x"}}], "opt_out.steps.0.email_confirmation: missing required key 'link'"),
        ([{"send_email": {"to": "a@b.test", "subject": "s"}}], "missing required key 'body'"),
    ],
)
def test_flow_errors_are_one_line_naming_the_step(steps, message):
    error = load_error(steps)
    assert error.startswith("draft.yaml: opt_out.") and message in error, error


def test_send_email_naming_the_address_allows_a_confirmation_and_browser_fills_need_no_submit():
    letter = {"to": "privacy@x.test", "subject": "Deletion {reference}", "body": "Reply to {email}: {listing_url}"}
    definition([{"send_email": letter}, {"email_confirmation": {"from": "x", "link": "/c/"}}])
    definition(
        [{"navigate": "/r"}, {"fill": {"input#q": "{full_name}"}}, {"click": {"css": "button"}}], render="browser"
    )


def test_captcha_markers_generic_and_the_sites_own():
    def page(body: str) -> HtmlResponse:
        return HtmlResponse("http://x.test/r", body=f"<html><body>{body}</body></html>".encode(), encoding="utf-8")

    assert captcha_on(page('<form><div class="g-recaptcha" data-sitekey="k"></div></form>'))
    assert captcha_on(page('<form><input name="captcha_answer"></form>'))
    assert captcha_on(page('<iframe src="https://hcaptcha.com/x"></iframe><iframe src="/h-captcha"></iframe>'))
    assert not captcha_on(page('<form><input name="email"></form><p>We never use a captcha here.</p>'))
    assert captcha_on(page('<div id="robot-check">prove it</div>'), [{"css": "#robot-check"}])


def test_the_five_sites_flows_load():
    for site, definition_ in load_definitions().items():
        flow = flows.flow_of(definition_)
        if flow is not None:
            assert flow.steps and flow.url.startswith(definition_.base_url), site


def test_format_md_has_a_valid_example_of_every_step_kind():
    text = (Path(__file__).resolve().parents[2] / "spiders" / "sites" / "FORMAT.md").read_text()
    section = text.split("## `opt_out`: the removal flow", 1)[1]
    examples = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[1])
    assert sorted({next(iter(step)) for step in examples}) == sorted(OPT_OUT_STEPS)
    step_schema = {**SCHEMA["properties"]["opt_out"]["properties"]["steps"]["items"], "$defs": SCHEMA["$defs"]}
    for step in examples:
        jsonschema.validate(step, step_schema)
        assert flows.parse_step(step).kind == next(iter(step))
