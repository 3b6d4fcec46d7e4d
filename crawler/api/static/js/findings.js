// The findings of a scan, grouped by site: per listing its confidence, status, the data types
// exposed and their values, its screenshot (fetched with the key -> blob: URL) and a
// "Request removal" button. Every value is written as text (dom.js).

import {blobUrl, call} from "./api.js";
import {$, el, fill, safeLink} from "./dom.js";

const REMOVABLE = new Set(["found", "reappeared"]);

/** Screenshot blob URLs by listing id, kept while the scan page is open (revoked by release()). */
const shots = new Map();

export function release() {
  for (const url of shots.values()) URL.revokeObjectURL(url);
  shots.clear();
}

/** Every listing of the scan, following next_cursor. */
export async function loadListings(scanId, signal) {
  const listings = [];
  let cursor = null;
  do {
    const params = cursor ? `?${new URLSearchParams({cursor})}` : "";
    const page = await call(`/api/scans/${encodeURIComponent(scanId)}/findings${params}`, {signal});
    listings.push(...(page.listings || []));
    cursor = page.next_cursor;
  } while (cursor);
  return listings;
}

function percent(confidence) {
  return typeof confidence === "number" ? `${Math.round(confidence * 100)} %` : "?";
}

function typeCounts(data) {
  const counts = {};
  for (const datum of data) counts[datum.type] = (counts[datum.type] || 0) + 1;
  return Object.entries(counts).map(([type, n]) => el("span", {class: `chip t-${type}`}, n > 1 ? `${type} ×${n}` : type));
}

function openFull(url) {
  const dialog = $("#shot-dialog");
  $("#shot-full").src = url;
  dialog.showModal();
}

function screenshot(listing) {
  const holder = el("div", {class: "shot"});
  if (!listing.screenshot_url) return fill(holder, el("span", {class: "muted"}, "no screenshot"));
  const image = el("img", {class: "thumb", alt: "Screenshot of the listing (click for full size)"});
  const button = el("button", {type: "button", class: "thumb-button", title: "Open full size"}, image);
  button.addEventListener("click", () => image.src && openFull(image.src));
  fill(holder, button);
  const cached = shots.get(listing.id);
  if (cached) {
    image.src = cached;
  } else {
    blobUrl(listing.screenshot_url)
      .then((url) => {
        shots.set(listing.id, url);
        image.src = url;
      })
      .catch((error) => fill(holder, el("span", {class: "error"}, `screenshot unavailable (${error.message})`)));
  }
  return holder;
}

function evidence(listing) {
  if (!listing.evidence || typeof listing.evidence !== "object") return null;
  return el("details", {class: "evidence"},
    el("summary", {}, "Match evidence"),
    el("pre", {}, JSON.stringify(listing.evidence, null, 2)));
}

function listingCard(listing, onRemove) {
  const status = el("span", {class: `badge status-${listing.status}`, "data-role": "status"}, listing.status);
  const remove = el("button", {type: "button", class: "remove", "data-role": "remove"},
    REMOVABLE.has(listing.status) ? "Request removal" : "Removal requested");
  remove.disabled = !REMOVABLE.has(listing.status);
  remove.addEventListener("click", () => onRemove(listing, remove));
  const rows = (listing.data || []).map((datum) =>
    el("tr", {}, el("th", {scope: "row"}, datum.type), el("td", {class: "value"}, datum.value)));
  return el("article", {class: "listing", "data-listing-id": String(listing.id)},
    el("header", {},
      el("span", {class: "confidence", title: "Match confidence"}, percent(listing.confidence)),
      status,
      el("span", {class: "types"}, typeCounts(listing.data || [])),
      remove),
    el("div", {class: "listing-body"},
      screenshot(listing),
      el("div", {class: "values"},
        el("table", {class: "data"}, el("tbody", {}, rows)),
        el("p", {class: "source"}, "Listing: ", safeLink(listing.url)),
        evidence(listing))));
}

/** Render the listings grouped by site into #findings. */
export function renderFindings(listings, onRemove) {
  const bySite = new Map();
  for (const listing of listings) {
    if (!bySite.has(listing.site)) bySite.set(listing.site, []);
    bySite.get(listing.site).push(listing);
  }
  const sections = [...bySite.keys()].sort().map((site) => {
    const items = bySite.get(site);
    return el("section", {class: "site", "data-site": site},
      el("h3", {}, site, el("span", {class: "muted"}, ` ${items.length} listing${items.length === 1 ? "" : "s"}`)),
      items.map((listing) => listingCard(listing, onRemove)));
  });
  fill($("#findings"), sections);
  $("#findings-empty").hidden = listings.length > 0;
}
