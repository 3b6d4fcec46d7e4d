// The "Is this you?" view (#/reviews): listings the matcher was not sure about (GET /api/reviews),
// each with its data, and Yes / No (POST /api/reviews/{id}). Yes adds the listing to the findings and
// offers its removal (DELETE /api/findings/{listing_id}); no is remembered and never asked again.
// Every value is written as text (dom.js): these are scraped values.

import {call, send} from "./api.js";
import {$, el, fill, safeLink} from "./dom.js";

function counter(n) {
  const badge = $("#reviews-count");
  badge.textContent = String(n);
  badge.hidden = n === 0;
}

function remaining() {
  const left = $("#reviews").querySelectorAll("article.review[data-state=open]").length;
  counter(left);
  $("#reviews-empty").hidden = $("#reviews").children.length > 0;
}

function removalButton(listingId, notify) {
  const button = el("button", {type: "button", "data-role": "remove"}, "Request removal");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await send(`/api/findings/${encodeURIComponent(listingId)}`, {method: "DELETE"});
      button.textContent = "Removal requested";
      notify("Removal requested: follow it under Removals.");
    } catch (error) {
      button.disabled = false;
      notify(error.message, true);
    }
  });
  return button;
}

async function answer(review, card, value, notify) {
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  try {
    const answered = await call(`/api/reviews/${encodeURIComponent(review.id)}`, {method: "POST", body: {answer: value}});
    card.dataset.state = value;
    const outcome = card.querySelector("[data-role=outcome]");
    if (value === "yes") {
      fill(outcome, el("span", {class: "badge status-found"}, "added to your findings"), " ",
        answered.listing_id ? removalButton(answered.listing_id, notify) : null);
      for (const button of card.querySelectorAll("[data-role=yes], [data-role=no]")) button.remove();
    } else {
      card.remove();
      notify("Noted: this listing is not you, and will not be asked again.");
    }
    remaining();
  } catch (error) {
    for (const button of card.querySelectorAll("button")) button.disabled = false;
    notify(error.message, true);
  }
}

function reviewCard(review, notify) {
  const yes = el("button", {type: "button", class: "primary", "data-role": "yes"}, "Yes, this is me");
  const no = el("button", {type: "button", "data-role": "no"}, "No, not me");
  const rows = (review.data || []).map((datum) =>
    el("tr", {}, el("th", {scope: "row"}, datum.type), el("td", {class: "value"}, datum.value)));
  const card = el("article", {class: "listing review", "data-review-id": String(review.id), "data-state": "open"},
    el("header", {},
      el("strong", {}, review.site),
      el("span", {class: "confidence", title: "Match confidence"}, `${Math.round(review.confidence * 100)} %`),
      yes, no,
      el("span", {"data-role": "outcome"})),
    el("div", {class: "values"},
      el("table", {class: "data"}, el("tbody", {}, rows)),
      el("p", {class: "source"}, "Listing: ", safeLink(review.url))));
  yes.addEventListener("click", () => answer(review, card, "yes", notify));
  no.addEventListener("click", () => answer(review, card, "no", notify));
  return card;
}

export async function loadReviews(notify) {
  const page = await call("/api/reviews");
  const reviews = page.reviews || [];
  fill($("#reviews"), reviews.map((review) => reviewCard(review, notify)));
  remaining();
}

/** The header's count of open questions, quietly. */
export async function refreshReviewCount() {
  try {
    counter(((await call("/api/reviews")).reviews || []).length);
  } catch {
    // a hint only
  }
}
