// The page's entry point: sign-in and sign-out, the views switched by the URL's hash
// (#/ = new scan and the scan list, #/scans/{id} = one scan, #/removals, #/tasks, #/reviews =
// people in the loop of removals, #/heals = operators' review of healed site definitions), and the notice line.

import {ApiError, auth, call, whenUnauthorized} from "./api.js";
import {$, show} from "./dom.js";
import {loadHeals, refreshHealCount} from "./heals.js";
import {loadScans, setUpHome} from "./home.js";
import {loadRemovals, setUpRemovals} from "./removals.js";
import {loadReviews, refreshReviewCount} from "./review.js";
import {leaveScan, openScan} from "./scan.js";
import {loadTasks, refreshTaskCount} from "./tasks.js";

const VIEWS = ["#view-signin", "#view-home", "#view-scan", "#view-removals", "#view-tasks", "#view-reviews", "#view-heals"];
// hash -> [view, loader]
const PAGES = {
  "#/removals": ["#view-removals", () => loadRemovals()],
  "#/tasks": ["#view-tasks", () => loadTasks(notify)],
  "#/reviews": ["#view-reviews", () => loadReviews(notify)],
  "#/heals": ["#view-heals", () => loadHeals(notify)],
};

function notify(message, isError = false) {
  const notice = $("#notice");
  notice.textContent = message || "";
  notice.classList.toggle("error", Boolean(isError));
  notice.hidden = !message;
}

function view(selector) {
  for (const id of VIEWS) show($(id), id === selector);
  show($("#account"), selector !== "#view-signin");
}

function signOut(message) {
  leaveScan();
  auth.clear();
  $("#scan-rows").replaceChildren();
  $("#findings").replaceChildren();
  $("#chart").replaceChildren();
  $("#progress-rows").replaceChildren();
  for (const id of ["#removals", "#tasks", "#reviews", "#heals"]) $(id).replaceChildren();
  for (const id of ["#tasks-count", "#reviews-count", "#heals-count", "#heals-link"]) $(id).hidden = true;
  if (location.hash !== "" && location.hash !== "#/") history.replaceState(null, "", "#/");
  view("#view-signin");
  notify(message || "", Boolean(message));
  $("#api-key").focus();
}

async function route() {
  if (!auth.key) {
    signOut();
    return;
  }
  notify("");
  const page = PAGES[location.hash];
  const match = location.hash.match(/^#\/scans\/([^/?#]+)$/);
  if (page) {
    leaveScan();
    view(page[0]);
    await page[1]().catch((error) => notify(error.message, true));
  } else if (match) {
    view("#view-scan");
    await openScan(decodeURIComponent(match[1]), notify);
  } else {
    leaveScan();
    view("#view-home");
    await loadScans().catch((error) => notify(error.message, true));
  }
  if (location.hash !== "#/tasks") refreshTaskCount();
  if (location.hash !== "#/reviews") refreshReviewCount();
  if (location.hash !== "#/heals") refreshHealCount();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#api-key");
  const key = input.value.trim();
  const error = $("#signin-error");
  error.hidden = true;
  try {
    await call("/api/scans?limit=1", {key}); // a refused key answers 401
  } catch (failure) {
    error.textContent = failure instanceof ApiError && failure.status === 401 ? "This key was refused." : failure.message;
    error.hidden = false;
    return;
  }
  auth.set(key);
  input.value = "";
  await route();
}

function start() {
  whenUnauthorized(() => signOut("Your key was refused; sign in again."));
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  setUpHome((id) => {
    location.hash = `#/scans/${encodeURIComponent(id)}`;
  }, notify);
  setUpRemovals(notify);
  window.addEventListener("hashchange", () => route());
  route();
}

start();
