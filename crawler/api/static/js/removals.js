// The removals view (#/removals): every listing's removal request (GET /api/removals, newest first,
// a status filter and "Older requests" following next_cursor) with its status, the listing, its
// open task and its history. Every value is written as text (dom.js).

import {call, query} from "./api.js";
import {$, el, fill, safeLink, when} from "./dom.js";

let cursor = null;

function historyRow(event) {
  const detail = event.detail || {};
  const why = [detail.reason, detail.kind, detail.outcome].filter(Boolean).join(", ");
  return el("tr", {"data-role": "event"},
    el("td", {}, when(event.at)),
    el("td", {}, event.from_status ? `${event.from_status} → ${event.to_status}` : event.to_status),
    el("td", {}, String(event.attempt)),
    el("td", {class: "muted"}, why));
}

function taskLine(task) {
  if (!task) return null;
  return el("p", {class: "task", "data-role": "task"},
    el("span", {class: "badge"}, task.kind), " ", task.instructions, " ",
    el("a", {href: "#/tasks"}, "Go to tasks"));
}

function removalCard(removal) {
  const history = removal.history || [];
  return el("article", {class: "listing removal", "data-removal-id": String(removal.id)},
    el("header", {},
      el("strong", {}, removal.site),
      el("span", {class: `badge status-${removal.status}`, "data-role": "status"}, removal.status),
      el("span", {class: "muted"}, `attempt ${removal.attempt}`),
      el("span", {class: "muted"}, `requested ${when(removal.created_at)}`),
      removal.removed_at ? el("span", {class: "muted"}, `removed ${when(removal.removed_at)}`) : null),
    el("div", {class: "values"},
      el("p", {class: "source"}, "Listing: ", removal.url ? safeLink(removal.url) : el("span", {class: "muted"}, "?")),
      removal.reason ? el("p", {class: "muted", "data-role": "reason"}, removal.reason) : null,
      taskLine(removal.task),
      el("details", {class: "history"},
        el("summary", {}, `History (${history.length})`),
        el("table", {class: "data"},
          el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Status"), el("th", {}, "Attempt"),
            el("th", {}, "Why"))),
          el("tbody", {}, history.map(historyRow))))));
}

/** Load the first page (more = false) or the next page of the caller's removal requests. */
export async function loadRemovals(more = false) {
  const status = $("#removal-filter").value;
  if (!more) cursor = null;
  const page = await call(`/api/removals${query({status, cursor, limit: 20})}`);
  const cards = (page.removals || []).map(removalCard);
  if (more) $("#removals").append(...cards);
  else fill($("#removals"), cards);
  cursor = page.next_cursor || null;
  $("#removals-more").hidden = !cursor;
  $("#removals-empty").hidden = $("#removals").children.length > 0;
}

export function setUpRemovals(notify) {
  $("#removal-filter").addEventListener("change", () => loadRemovals().catch((e) => notify(e.message, true)));
  $("#removals-more").addEventListener("click", () => loadRemovals(true).catch((e) => notify(e.message, true)));
}
