// The HTTP API client: the key kept in sessionStorage (this tab only), every call with
// Authorization: Bearer, errors as ApiError, Server-Sent Events read from a fetch stream
// (EventSource cannot send the Authorization header).

const KEY = "scans.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

// Called with the ApiError when the key is refused (401), so the app can sign out.
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  const error = (body && body.error) || {};
  const retry = response.headers.get("Retry-After");
  const message = error.message || (typeof body?.detail === "string" ? body.detail : response.statusText);
  return new ApiError(response.status, error.code, message, error.field, retry ? Number(retry) : undefined);
}

/** fetch() with the key; resolves to the Response when ok, throws ApiError otherwise. */
export async function send(path, {method = "GET", body, headers = {}, signal, key = auth.key} = {}) {
  const init = {method, signal, headers: {Accept: "application/json", ...headers}, cache: "no-store"};
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401 && key && key === auth.key) onUnauthorized(error);
    throw error;
  }
  return response;
}

/** A JSON call: the parsed body, or null for an empty one. */
export async function call(path, options) {
  const response = await send(path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** A query string of the defined parameters ("?a=1&b=2", or ""). */
export function query(params) {
  const defined = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return defined.length ? `?${new URLSearchParams(defined)}` : "";
}

/** An image the API serves (screenshots need the key) as a blob: URL; revoke it when done. */
export async function blobUrl(path, signal) {
  const response = await send(path, {headers: {Accept: "image/png"}, signal});
  return URL.createObjectURL(await response.blob());
}

/** A random Idempotency-Key (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Read text/event-stream from path, calling onEvent(name, data) per event (data parsed as JSON when
 * it is JSON). Resolves when the server ends the stream; rejects on network errors or abort.
 */
export async function streamEvents(path, onEvent, signal) {
  const response = await send(path, {headers: {Accept: "text/event-stream"}, signal});
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "";
  let data = [];
  const dispatch = () => {
    if (data.length) {
      const text = data.join("\n");
      let value = text;
      try {
        value = JSON.parse(text);
      } catch {
        // plain text data
      }
      onEvent(name || (value && value.event) || "message", value);
    }
    name = "";
    data = [];
  };
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line === "") dispatch();
      else if (line.startsWith(":")) continue; // comment / keep-alive
      else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const rest = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = rest;
        else if (field === "data") data.push(rest);
      }
    }
  }
  dispatch();
}
