// A scan's page: status and timings, live per-site progress from GET /api/scans/{id}/events
// (SSE over a fetch stream: "snapshot" events carry the scan row, "progress", "found_data",
// "candidate_rejected" and "error" come from the crawl, "completed" ends it), then its findings
// and the exposure chart. Leaving the page aborts the stream and releases the screenshots' blob: URLs.

import {call, send, streamEvents} from "./api.js";
import {exposure, exposureChart} from "./chart.js";
import {$, duration, el, fill, when} from "./dom.js";
import {loadListings, release, renderFindings} from "./findings.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const COLUMNS = ["stage", "pages", "listings", "accepted", "rejected", "screenshots", "errors", "outcome"];

let current = null; // the open scan: {id, controller, sites, status, timers}

function sum(values) {
  return Object.values(values || {}).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
}

function count(value) {
  return typeof value === "number" ? value : sum(value);
}

/**
 * Progress rows from GET /api/scans/{id}'s ``progress`` ([{site, listings, ...}]) or from the
 * ``counters`` of a ``completed`` event ({site: {listings, errors: {kind: n}, ...}}).
 */
function fromCounters(progress) {
  const entries = Array.isArray(progress) ? progress.map((p) => [p.site, p]) : Object.entries(progress || {});
  const sites = {};
  for (const [id, c] of entries) {
    sites[id] = {
      stage: c.outcome ? "done" : "",
      pages: count(c.pages),
      listings: c.listings ?? 0,
      accepted: c.accepted ?? 0,
      rejected: c.rejected ?? 0,
      screenshots: c.screenshots ?? 0,
      errors: count(c.errors),
      outcome: c.outcome ?? "",
    };
  }
  return sites;
}

function site(state, id) {
  return (state.sites[id] ??= {stage: "", pages: 0, listings: 0, accepted: 0, rejected: 0, screenshots: 0, errors: 0, outcome: ""});
}

function renderProgress(state) {
  const rows = Object.keys(state.sites).sort().map((id) =>
    el("tr", {"data-site": id}, el("th", {scope: "row"}, id),
      COLUMNS.map((column) => el("td", {class: `col-${column}`}, String(state.sites[id][column] ?? "")))));
  fill($("#progress-rows"), rows);
}

function renderStatus(state, scan) {
  const status = $("#scan-status");
  status.textContent = state.status;
  status.className = `badge status-${state.status}`;
  $("#scan-cancel").hidden = TERMINAL.has(state.status);
  if (scan) {
    const parts = [`created ${when(scan.created_at)}`];
    if (scan.started_at) parts.push(`started ${when(scan.started_at)}`);
    if (scan.finished_at) parts.push(`finished ${when(scan.finished_at)} (${duration(scan.started_at || scan.created_at, scan.finished_at)})`);
    if (scan.priority) parts.push(`priority ${scan.priority}`);
    $("#scan-timing").textContent = parts.join(" · ");
    const error = $("#scan-error");
    error.textContent = scan.error ? `Error: ${scan.error}` : "";
    error.hidden = !scan.error;
  }
}

function applyScan(state, scan) {
  state.status = scan.status;
  const counters = scan.progress || scan.counters || [];
  state.sites = {...Object.fromEntries((scan.sites || []).map((id) => [id, site({sites: {}}, id)])), ...fromCounters(counters)};
  renderStatus(state, scan);
  renderProgress(state);
}

async function refreshFindings(state) {
  const listings = await loadListings(state.id, state.controller.signal);
  if (current !== state) return;
  renderFindings(listings, (listing, button) => requestRemoval(state, listing, button));
  fill($("#chart"), exposureChart(exposure(listings)));
}

async function requestRemoval(state, listing, button) {
  button.disabled = true;
  try {
    await send(`/api/findings/${encodeURIComponent(listing.id)}`, {method: "DELETE"});
    await refreshFindings(state);
  } catch (error) {
    button.disabled = false;
    state.notify(`Removal not requested: ${error.message}`, true);
  }
}

function onEvent(state, name, data) {
  if (current !== state || !data || typeof data !== "object") return;
  const live = $("#live");
  if (data.site) {
    const row = site(state, data.site);
    if (name === "progress") {
      row.stage = data.stage || row.stage;
      if (typeof data.counts?.pages === "number") row.pages = data.counts.pages;
      else row.pages += 1;
    } else if (name === "found_data") {
      row.accepted += 1;
      row.listings += 1;
      live.textContent = `${data.site}: a listing matched (confidence ${Math.round((data.confidence || 0) * 100)} %)`;
      scheduleFindings(state);
    } else if (name === "candidate_rejected") {
      row.rejected += 1;
      row.listings += 1;
    } else if (name === "error") {
      row.errors += 1;
      live.textContent = `${data.site}: ${data.kind}`;
    }
  }
  if (name === "snapshot" || name === "completed") {
    // the scan row: its status and exact per-site counters (the stages seen live are kept)
    state.status = data.status || (name === "completed" ? "completed" : state.status);
    const rows = fromCounters(data.progress || data.counters);
    for (const [id, row] of Object.entries(rows)) row.stage = row.stage || state.sites[id]?.stage || "";
    state.sites = {...state.sites, ...rows};
    if (name === "completed") live.textContent = `Scan ${state.status}.`;
  } else if (state.status === "pending") {
    state.status = "running";
  }
  renderStatus(state);
  renderProgress(state);
}

function scheduleFindings(state) {
  clearTimeout(state.timers.findings);
  state.timers.findings = setTimeout(() => refreshFindings(state).catch(() => {}), 2000);
}

/** Follow the events until the scan is over; reconnect when the stream ends early. */
async function follow(state) {
  let delay = 1000;
  while (current === state && !TERMINAL.has(state.status)) {
    try {
      await streamEvents(`/api/scans/${encodeURIComponent(state.id)}/events`, (n, d) => onEvent(state, n, d), state.controller.signal);
      delay = 1000;
    } catch (error) {
      if (state.controller.signal.aborted) return;
      $("#live").textContent = `Live view interrupted (${error.message}); reconnecting…`;
      delay = Math.min(delay * 2, 15000);
    }
    if (current !== state) return;
    const scan = await call(`/api/scans/${encodeURIComponent(state.id)}`, {signal: state.controller.signal});
    applyScan(state, scan);
    if (!TERMINAL.has(state.status)) await new Promise((resolve) => setTimeout(resolve, delay));
  }
  if (current === state) await refreshFindings(state);
}

export function leaveScan() {
  if (current) {
    current.controller.abort();
    Object.values(current.timers).forEach(clearTimeout);
    current = null;
  }
  release();
}

export async function openScan(id, notify) {
  leaveScan();
  const state = {id, controller: new AbortController(), sites: {}, status: "", timers: {}, notify};
  current = state;
  $("#scan-id").textContent = id;
  fill($("#progress-rows"));
  fill($("#findings"));
  fill($("#chart"));
  $("#live").textContent = "";
  $("#scan-cancel").onclick = async () => {
    try {
      const result = await call(`/api/scans/${encodeURIComponent(id)}/cancel`, {method: "POST"});
      if (result?.status) state.status = result.status;
      renderStatus(state);
    } catch (error) {
      notify(`Cancel failed: ${error.message}`, true);
    }
  };
  try {
    applyScan(state, await call(`/api/scans/${encodeURIComponent(id)}`, {signal: state.controller.signal}));
    await refreshFindings(state);
    if (!TERMINAL.has(state.status)) await follow(state);
  } catch (error) {
    if (!state.controller.signal.aborted && current === state) notify(error.status === 404 ? "No such scan." : error.message, true);
  }
}
