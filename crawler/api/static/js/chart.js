// Exposure by site: one horizontal bar per site, stacked by data type (values exposed), as inline
// SVG built with createElementNS. Colours come from page.css (classes t-name, t-phone, ...).

import {el, svg} from "./dom.js";

export const DATA_TYPES = ["name", "email", "phone", "address", "relative", "age"];
const BAR = 22;
const GAP = 10;
const LABEL = 110;
const WIDTH = 560;
const COUNT = 48;

/** {site: {type: n}} from the listings of GET /api/scans/{id}/findings. */
export function exposure(listings) {
  const bySite = {};
  for (const listing of listings) {
    const types = (bySite[listing.site] ??= {});
    for (const datum of listing.data || []) types[datum.type] = (types[datum.type] || 0) + 1;
  }
  return bySite;
}

function total(types) {
  return Object.values(types).reduce((a, b) => a + b, 0);
}

export function exposureChart(bySite) {
  const sites = Object.keys(bySite).sort((a, b) => total(bySite[b]) - total(bySite[a]) || a.localeCompare(b));
  if (!sites.length) return el("p", {class: "muted"}, "No exposed values yet.");
  const most = Math.max(...sites.map((site) => total(bySite[site])));
  const span = WIDTH - LABEL - COUNT;
  const height = sites.length * (BAR + GAP);
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": "Values exposed by site, by data type",
  });
  sites.forEach((site, row) => {
    const y = row * (BAR + GAP);
    const types = bySite[site];
    const group = svg("g", {class: "bar", "data-site": site});
    group.append(svg("text", {x: 0, y: y + BAR * 0.7, class: "label"}, site));
    let x = LABEL;
    for (const type of DATA_TYPES.concat(Object.keys(types).filter((t) => !DATA_TYPES.includes(t)))) {
      const n = types[type];
      if (!n) continue;
      const w = (n / most) * span;
      group.append(
        svg("rect", {x, y, width: Math.max(w, 1), height: BAR, class: `t-${DATA_TYPES.includes(type) ? type : "other"}`},
          svg("title", {}, `${site}: ${n} ${type}`)),
      );
      x += w;
    }
    group.append(svg("text", {x: x + 6, y: y + BAR * 0.7, class: "count"}, String(total(types))));
    chart.append(group);
  });
  const legend = el("ul", {class: "legend"},
    DATA_TYPES.map((type) => el("li", {}, el("span", {class: `swatch t-${type}`}), type)));
  return el("div", {}, chart, legend);
}
