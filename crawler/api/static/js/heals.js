// The heals view (#/heals), for operators: healed site definitions waiting for a person (GET /api/heals:
// the quarantined versions), each with its provenance and its diff against the site's YAML, and Accept /
// Reject (POST /api/heals/{id}/accept|reject). Accepting releases the listings held under the heal into
// findings; rejecting deletes them. Other keys get 403: the header's link stays hidden for them.
// The diff is written as text, line by line (dom.js): a healed selector may come from a broker's markup.

import {ApiError, auth, call} from "./api.js";
import {$, el, fill, when} from "./dom.js";

// the key the API refused heals to (403): not asked again on every view change
let refusedKey = null;

const OUTCOME = {
  accept: (answer) => `accepted: ${answer.released} held finding${answer.released === 1 ? "" : "s"} released`,
  reject: (answer) => `rejected: ${answer.deleted} held finding${answer.deleted === 1 ? "" : "s"} deleted`,
};

function counter(n) {
  const badge = $("#heals-count");
  badge.textContent = String(n);
  badge.hidden = n === 0;
}

function remaining() {
  counter($("#heals").querySelectorAll("article.heal[data-state=quarantined]").length);
  $("#heals-empty").hidden = $("#heals").children.length > 0;
}

function diffLines(text) {
  const lines = (text || "").split("\n");
  if (lines[lines.length - 1] === "") lines.pop(); // the diff ends with a newline
  return lines.map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "file"
      : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "same";
    return el("span", {class: `line ${kind}`}, `${line}\n`);
  });
}

async function decide(heal, card, action, notify) {
  const buttons = card.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  try {
    const answer = await call(`/api/heals/${encodeURIComponent(heal.id)}/${action}`, {method: "POST"});
    const status = answer.heal.status;
    card.dataset.state = status;
    const badge = card.querySelector("[data-role=status]");
    badge.textContent = status;
    badge.className = `badge status-${status}`;
    fill(card.querySelector("[data-role=outcome]"), OUTCOME[action](answer));
    for (const button of buttons) button.remove();
    notify(`Heal ${heal.id} of ${heal.site} ${OUTCOME[action](answer)}.`);
    if (action === "accept") await settleAncestors(heal);
    remaining();
  } catch (error) {
    for (const button of buttons) button.disabled = false;
    notify(error.message, true);
  }
}

// Accepting a heal accepts the quarantined heals it builds on too: their cards follow.
async function settleAncestors(heal) {
  const pending = new Set(((await call("/api/heals")).heals || []).map((h) => String(h.id)));
  for (const card of $("#heals").querySelectorAll("article.heal[data-state=quarantined]")) {
    if (pending.has(card.dataset.healId)) continue;
    const now = await call(`/api/heals/${encodeURIComponent(card.dataset.healId)}`);
    card.dataset.state = now.status;
    const badge = card.querySelector("[data-role=status]");
    badge.textContent = now.status;
    badge.className = `badge status-${now.status}`;
    fill(card.querySelector("[data-role=outcome]"), `${now.status} with heal ${heal.id}`);
    for (const button of card.querySelectorAll("button")) button.remove();
  }
}

function healCard(heal, notify) {
  const accept = el("button", {type: "button", class: "primary", "data-role": "accept"}, "Accept");
  const reject = el("button", {type: "button", "data-role": "reject"}, "Reject");
  const card = el("article", {class: "listing heal", "data-heal-id": String(heal.id), "data-state": heal.status},
    el("header", {},
      el("strong", {}, heal.site),
      el("span", {class: `badge status-${heal.status}`, "data-role": "status"}, heal.status),
      el("span", {class: "chip", title: "Where the heal came from"}, heal.origin),
      el("span", {class: "confidence", title: "Confidence"}, `${Math.round(heal.confidence * 100)} %`),
      el("span", {class: "muted"}, `made ${when(heal.created_at)}`),
      accept, reject,
      el("span", {"data-role": "outcome"})),
    el("div", {class: "values"},
      el("p", {"data-role": "facts"},
        "Changed: ", el("code", {}, (heal.fields || []).join(", ") || "none"),
        ` · verified on ${heal.pages} page${heal.pages === 1 ? "" : "s"}`,
        ` · ${heal.held} held finding${heal.held === 1 ? "" : "s"} waiting`),
      heal.base_changed ? el("p", {class: "notice error", "data-role": "base-changed"},
        `${heal.base} changed since this heal: the diff shows those edits too.`) : null,
      heal.base ? null : el("p", {class: "muted"}, "No YAML of this site here: the diff is the whole definition."),
      el("pre", {class: "diff", "data-role": "diff"}, diffLines(heal.diff))));
  accept.addEventListener("click", () => decide(heal, card, "accept", notify));
  reject.addEventListener("click", () => decide(heal, card, "reject", notify));
  return card;
}

function forbidden(error) {
  return error instanceof ApiError && error.status === 403;
}

export async function loadHeals(notify) {
  $("#heals-forbidden").hidden = true;
  let page;
  try {
    page = await call("/api/heals");
  } catch (error) {
    if (!forbidden(error)) throw error;
    fill($("#heals"));
    $("#heals-empty").hidden = true;
    $("#heals-forbidden").hidden = false;
    return;
  }
  fill($("#heals"), (page.heals || []).map((heal) => healCard(heal, notify)));
  refusedKey = null;
  $("#heals-link").hidden = false;
  remaining();
}

/** The header's link and count of pending heals, for operators' keys only; quietly. */
export async function refreshHealCount() {
  if (auth.key === refusedKey) return;
  try {
    const page = await call("/api/heals");
    $("#heals-link").hidden = false;
    counter((page.heals || []).length);
  } catch (error) {
    $("#heals-link").hidden = true; // not an operator (or a hint that failed)
    if (forbidden(error)) refusedKey = auth.key;
  }
}
