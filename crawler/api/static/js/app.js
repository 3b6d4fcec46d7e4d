// The page's entry point: sign-in and sign-out, the views switched by the URL's hash
// (#/ = new scan and the scan list, #/scans/{id} = one scan), and the notice line.

import {ApiError, auth, call, whenUnauthorized} from "./api.js";
import {$, show} from "./dom.js";
import {loadScans, setUpHome} from "./home.js";
import {leaveScan, openScan} from "./scan.js";

const VIEWS = ["#view-signin", "#view-home", "#view-scan"];

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
  const match = location.hash.match(/^#\/scans\/([^/?#]+)$/);
  if (match) {
    view("#view-scan");
    await openScan(decodeURIComponent(match[1]), notify);
  } else {
    leaveScan();
    view("#view-home");
    await loadScans().catch((error) => notify(error.message, true));
  }
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
  window.addEventListener("hashchange", () => route());
  route();
}

start();
