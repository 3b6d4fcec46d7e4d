// The tasks view (#/tasks): what a person must do for their removals (GET /api/tasks): the kind,
// the instructions, where (a link to the broker's page), the listing, and a Done button
// (POST /api/tasks/{id}/done) that resumes the removal flow. Every value is written as text.

import {call} from "./api.js";
import {$, el, fill, safeLink, when} from "./dom.js";

function counter(n) {
  const badge = $("#tasks-count");
  badge.textContent = String(n);
  badge.hidden = n === 0;
}

async function done(task, card, button, notify) {
  button.disabled = true;
  try {
    await call(`/api/tasks/${encodeURIComponent(task.id)}/done`, {method: "POST"});
    card.remove();
    const left = $("#tasks").children.length;
    counter(left);
    $("#tasks-empty").hidden = left > 0;
    notify(`Task done: the ${task.site} removal goes on.`);
  } catch (error) {
    button.disabled = false;
    notify(error.message, true);
  }
}

function taskCard(task, notify) {
  const button = el("button", {type: "button", class: "primary", "data-role": "done"}, "Done");
  const card = el("article", {class: "listing task", "data-task-id": String(task.id)},
    el("header", {},
      el("strong", {}, task.site),
      el("span", {class: "badge", "data-role": "kind"}, task.kind),
      el("span", {class: "muted"}, `since ${when(task.created_at)}`),
      button),
    el("div", {class: "values"},
      el("p", {"data-role": "instructions"}, task.instructions),
      el("p", {"data-role": "where"}, "Where: ",
        task.url ? safeLink(task.url, "the broker's page") : el("span", {class: "muted"}, "see the instructions")),
      el("p", {class: "source"}, "Listing: ", task.listing_url ? safeLink(task.listing_url) : "?"),
      el("p", {"data-role": "email"}, "E-mail to give: ", el("code", {}, task.email || "?"))));
  button.addEventListener("click", () => done(task, card, button, notify));
  return card;
}

export async function loadTasks(notify) {
  const page = await call("/api/tasks");
  const tasks = page.tasks || [];
  fill($("#tasks"), tasks.map((task) => taskCard(task, notify)));
  $("#tasks-empty").hidden = tasks.length > 0;
  counter(tasks.length);
}

/** The count badges in the header (open tasks), quietly: a failure leaves them as they are. */
export async function refreshTaskCount() {
  try {
    counter(((await call("/api/tasks")).tasks || []).length);
  } catch {
    // the views report errors; the badge is a hint
  }
}
