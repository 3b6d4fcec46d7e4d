// DOM building without HTML strings. Values from the API (scraped from broker pages, so
// attacker-controlled) only ever become text nodes or attribute values set through the DOM,
// never markup: there is no innerHTML / insertAdjacentHTML / document.write in this page.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  return node;
}

/** An HTML element: el("td", {class: "value"}, "text", otherNode). Strings become text nodes. */
export function el(tag, attrs, ...children) {
  return append(setAttributes(document.createElement(tag), attrs), children);
}

/** An SVG element (createElementNS), same conventions as el(). */
export function svg(tag, attrs, ...children) {
  return append(setAttributes(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replace a node's children with the given ones. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function $(selector) {
  return document.querySelector(selector);
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

/** A date-time from the API (ISO 8601) in the reader's locale; "" when absent. */
export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** Seconds between two ISO timestamps as "1 min 12 s"; "" when either is missing. */
export function duration(start, end) {
  if (!start || !end) return "";
  const seconds = Math.max(0, Math.round((new Date(end) - new Date(start)) / 1000));
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

/** A link only for http(s) URLs: a scraped "javascript:" URL stays plain text. */
export function safeLink(url, label) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") {
      return el("a", {href: parsed.href, target: "_blank", rel: "noopener noreferrer"}, label ?? parsed.href);
    }
  } catch {
    // not a URL: shown as text below
  }
  return el("span", {class: "url"}, label ?? String(url ?? ""));
}
