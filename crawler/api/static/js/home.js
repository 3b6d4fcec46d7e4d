// The home view: the new-scan form (POST /api/scans) and the caller's scans (GET /api/scans,
// newest first, with a status filter and an "Older scans" button following next_cursor).

import {call, idempotencyKey, query} from "./api.js";
import {$, el, fill, when} from "./dom.js";

let cursor = null;
let pendingKey = null; // one Idempotency-Key per form content: a double submit creates one scan

function list(value) {
  return String(value || "")
    .split(/[,;\n]/)
    .map((v) => v.trim())
    .filter(Boolean);
}

/** The POST /api/scans body from the form; empty optional fields are left out. */
function scanRequest(form) {
  const data = new FormData(form);
  const person = {};
  for (const name of ["first_name", "middle_name", "last_name", "city", "state"]) {
    const value = String(data.get(name) || "").trim();
    if (value) person[name] = value;
  }
  const age = String(data.get("age") || "").trim();
  if (age) person.age = Number(age);
  const emails = list(data.get("emails"));
  const phones = list(data.get("phones"));
  if (emails.length) person.emails = emails;
  if (phones.length) person.phones = phones;
  return {person, sites: data.getAll("sites").map(String), priority: String(data.get("priority") || "normal")};
}

function showFormError(form, error) {
  const message = $("#scan-form-error");
  message.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
  message.hidden = false;
  const name = String(error.field || "").split(".").pop().replace(/\[\d+\]$/, "");
  const input = name && form.elements.namedItem(name);
  if (input && input.focus) input.focus();
}

async function submit(event, onCreated) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = scanRequest(form);
  $("#scan-form-error").hidden = true;
  if (!body.person.first_name || !body.person.last_name) {
    showFormError(form, {field: "first_name", message: "first and last name are required"});
    return;
  }
  if (!body.sites.length) {
    showFormError(form, {field: "sites", message: "pick at least one site"});
    return;
  }
  const fingerprint = JSON.stringify(body);
  if (!pendingKey || pendingKey.fingerprint !== fingerprint) pendingKey = {fingerprint, key: idempotencyKey()};
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const created = await call("/api/scans", {method: "POST", body, headers: {"Idempotency-Key": pendingKey.key}});
    pendingKey = null;
    onCreated(created.id);
  } catch (error) {
    showFormError(form, error);
  } finally {
    button.disabled = false;
  }
}

function personName(person) {
  if (!person) return "";
  const name = [person.first_name, person.middle_name, person.last_name].filter(Boolean).join(" ");
  const place = [person.city, person.state].filter(Boolean).join(", ");
  return place ? `${name} (${place})` : name;
}

function scanRow(scan) {
  const sites = Array.isArray(scan.sites) ? scan.sites.join(", ") : "";
  return el("tr", {"data-scan-id": scan.id},
    el("td", {}, el("a", {href: `#/scans/${encodeURIComponent(scan.id)}`, title: sites}, String(scan.id).slice(0, 8))),
    el("td", {class: "person"}, personName(scan.person)),
    el("td", {}, el("span", {class: `badge status-${scan.status}`}, scan.status)),
    el("td", {}, scan.priority || ""),
    el("td", {}, when(scan.created_at)));
}

/** Load the first page (more = false) or the next page of the caller's scans. */
export async function loadScans(more = false) {
  const status = $("#status-filter").value;
  if (!more) cursor = null;
  const page = await call(`/api/scans${query({status, cursor, limit: 20})}`);
  const scans = page.scans || [];
  const rows = scans.map(scanRow);
  if (more) $("#scan-rows").append(...rows);
  else fill($("#scan-rows"), rows);
  cursor = page.next_cursor || null;
  $("#scans-more").hidden = !cursor;
  $("#scans-empty").hidden = $("#scan-rows").children.length > 0;
}

export function setUpHome(onCreated, notify) {
  $("#scan-form").addEventListener("submit", (event) => submit(event, onCreated));
  $("#status-filter").addEventListener("change", () => loadScans().catch((e) => notify(e.message, true)));
  $("#scans-more").addEventListener("click", () => loadScans(true).catch((e) => notify(e.message, true)));
}
