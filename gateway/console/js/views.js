// The page's tables and lists. Each view owns one element and updates it in place: rows are keyed, so a
// row a person is about to click is never replaced under the pointer by a mark price update.

import { formatPrice } from "./chart.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));

export function fmt(value, digits = 2) {
  const n = num(value);
  if (!Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export const price = (v) => (Number.isFinite(num(v)) && num(v) !== 0 ? formatPrice(num(v)) : "—");

export function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

const signed = (n) => (n > 0 ? "pos" : n < 0 ? "neg" : "");

// --- balances ----------------------------------------------------------------------------------

export function renderBalances(root, summary) {
  const info = summary.accountInfo;
  const stats = [
    ["Wallet balance", fmt(info.totalWalletBalance), "wallet"],
    ["Unrealized P&L", fmt(info.totalUnrealizedProfit), "upnl"],
    ["Margin balance", fmt(info.totalMarginBalance), "margin-balance"],
    ["Position margin", fmt(info.totalPositionInitialMargin), "position-margin"],
    ["Order margin", fmt(info.totalOpenOrderInitialMargin), "order-margin"],
    ["Available", fmt(info.availableBalance), "available"],
  ];
  root.replaceChildren(
    el("dl", { class: "stats" }, ...stats.map(([label, value, key]) => el("div", {},
      el("dt", { text: label }), el("dd", { text: value, "data-stat": key })))),
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["Asset", "Balance", "Available", "Unrealized P&L"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...summary.balances.map((b) => el("tr", { "data-asset": b.currency },
        el("td", { text: b.currency }), el("td", { text: fmt(b.balance, 4) }),
        el("td", { text: fmt(b.available, 4) }),
        el("td", { class: signed(num(b.unrealizedPnl)), text: fmt(b.unrealizedPnl, 4) }))))),
  );
}

// --- positions ---------------------------------------------------------------------------------

export function positionKey(p) {
  return `${p.symbol}:${p.positionSide}`;
}

// Unrealized P&L and ROE at a given mark: what the exchange would report, recomputed on every mark
// update so the row moves with the market (display only; the summary refresh brings the exchange's).
export function livePnl(p, mark) {
  const qty = num(p.quantity);
  const sign = p.direction === "SHORT" ? -1 : 1;
  const pnl = (mark - num(p.entryPrice)) * qty * sign;
  const margin = num(p.marginUsed);
  return { pnl, roe: margin ? (pnl / margin) * 100 : 0 };
}

export class PositionsView {
  constructor(tbody, { canTrade, onClose }) {
    this.tbody = tbody;
    this.canTrade = canTrade;
    this.onClose = onClose;
    this.rows = new Map();
    this.keys = "";
  }

  update(positions, marks) {
    const keys = positions.map(positionKey).join("|");
    if (keys !== this.keys) this.rebuild(positions);
    for (const p of positions) {
      const row = this.rows.get(positionKey(p));
      const mark = marks.get(p.symbol) ?? num(p.markPrice);
      const { pnl, roe } = livePnl(p, mark);
      row.cells.size.textContent = fmt(p.quantity, 3);
      row.cells.entry.textContent = price(p.entryPrice);
      row.cells.mark.textContent = price(mark);
      row.cells.liq.textContent = price(p.liquidationPrice);
      row.cells.margin.textContent = fmt(p.marginUsed);
      row.cells.pnl.textContent = fmt(pnl);
      row.cells.pnl.className = signed(pnl);
      row.cells.roe.textContent = `${fmt(roe)} %`;
      row.cells.roe.className = signed(roe);
      row.tr.dataset.mark = String(mark);
      row.tr.dataset.pnl = pnl.toFixed(8);
    }
    this.tbody.closest("section").querySelector(".empty").hidden = positions.length > 0;
  }

  rebuild(positions) {
    this.keys = positions.map(positionKey).join("|");
    this.rows.clear();
    const trs = positions.map((p) => {
      const cells = {};
      const td = (name, cls) => (cells[name] = el("td", { class: cls, "data-col": name }));
      const tr = el("tr", { "data-position": p.symbol, "data-side": p.positionSide },
        el("td", {}, el("strong", { text: p.symbol }), " ",
          el("span", { class: `tag ${p.direction.toLowerCase()}`, text: `${p.direction} ${p.leverage}×` })),
        td("size", "num"), td("entry", "num"), td("mark", "num"), td("liq", "num"),
        td("margin", "num"), td("pnl", "num"), td("roe", "num"),
        el("td", {}, this.canTrade()
          ? el("button", { class: "danger small", "data-action": "close", text: "Close", onclick: () => this.onClose(p) })
          : null));
      this.rows.set(positionKey(p), { tr, cells });
      return tr;
    });
    this.tbody.replaceChildren(...trs);
  }
}

// --- open orders -------------------------------------------------------------------------------

export function orderRole(o) {
  if (o.type === "STOP_MARKET" || o.type === "STOP") return "SL";
  if (o.type === "TAKE_PROFIT_MARKET" || o.type === "TAKE_PROFIT") return "TP";
  return "";
}

export function renderOrders(tbody, orders, { canTrade, onCancel }) {
  tbody.replaceChildren(...orders.map((o) => el("tr", { "data-order": o.orderId, "data-type": o.type },
    el("td", { text: o.symbol }),
    el("td", {}, el("span", { class: `tag ${o.side.toLowerCase()}`, text: o.side })),
    el("td", {}, o.type, orderRole(o) ? el("span", { class: "tag role", text: orderRole(o) }) : null),
    el("td", { class: "num", text: num(o.origQty) ? fmt(o.origQty, 3) : "whole position" }),
    el("td", { class: "num", text: price(o.price) }),
    el("td", { class: "num", text: price(o.stopPrice) }),
    el("td", { text: o.status }),
    el("td", { text: clock(o.time) }),
    el("td", {}, canTrade()
      ? el("button", { class: "small", "data-action": "cancel", text: "Cancel", onclick: () => onCancel(o) })
      : null))));
  tbody.closest("section").querySelector(".empty").hidden = orders.length > 0;
}

// --- the event feed ----------------------------------------------------------------------------

export function describeEvent(e) {
  const d = e.data || {};
  switch (e.type) {
    case "order": {
      const fill = num(d.lastFilledQty) > 0 ? ` — filled ${d.lastFilledQty} @ ${d.lastFilledPrice}` : "";
      const stop = num(d.stopPrice) ? ` stop ${d.stopPrice}` : "";
      return `${d.side} ${d.type}${d.algo ? " (algo)" : ""} ${d.symbol} #${d.orderId}${stop}: ${d.status}${fill}`;
    }
    case "position":
      return num(d.quantity) === 0
        ? `${d.symbol} position closed`
        : `${d.symbol} ${d.direction} ${d.quantity} @ ${d.entryPrice} (uPnL ${d.unrealizedPnl})`;
    case "balance":
      return `${d.currency} balance ${d.balance} (${num(d.change) >= 0 ? "+" : ""}${d.change}, ${d.reason})`;
    case "protection":
      return `${d.leg} of command ${String(d.commandId).slice(0, 8)}… fired: ${d.symbol} ${d.quantity} @ ${d.fillPrice}`;
    case "liquidation":
      return `LIQUIDATION ${d.side} ${d.symbol} ${d.quantity} @ ${d.price} (${d.status})`;
    case "margin_call":
      return `MARGIN CALL ${d.symbol} ${d.quantity} at mark ${d.markPrice}, uPnL ${d.unrealizedPnl}`;
    case "stream":
      return `stream ${d.status}${d.reason ? ` (${d.reason})` : ""}${d.republished !== undefined ? `, ${d.republished} republished` : ""}`;
    case "error":
      return `error ${d.code}: ${d.msg}`;
    default:
      return JSON.stringify(d);
  }
}

export function feedRow(e) {
  return el("li", { "data-seq": e.seq ?? "", "data-type": e.type, class: `ev-${e.type}` },
    el("time", { text: clock(e.time || Date.now()) }),
    el("span", { class: "seq", text: e.seq !== undefined ? `#${e.seq}` : "" }),
    el("span", { class: "type", text: e.type }),
    el("span", { class: "what", text: describeEvent(e) }));
}

// --- the command journal -----------------------------------------------------------------------

function payloadText(entry) {
  const p = entry.payload || {};
  const parts = [];
  for (const name of ["symbol", "side", "quantity", "orderId", "stopLoss", "takeProfit", "leverage", "marginType", "flatten", "interval"]) {
    if (p[name] !== undefined && p[name] !== null) parts.push(`${name}=${p[name]}`);
  }
  return parts.join(" ");
}

export function renderJournal(tbody, entries) {
  const rows = [...entries].reverse().map((entry) => el("tr", {
    "data-command": entry.commandId, "data-type": entry.type, class: entry.code === 200 ? "" : "failed",
  },
  el("td", { text: clock(entry.time) }),
  el("td", { text: entry.type }),
  el("td", { text: payloadText(entry) }),
  el("td", { class: entry.code === 200 ? "ok" : "neg", text: String(entry.code) }),
  el("td", { text: entry.msg }),
  el("td", { class: "mono", text: entry.idempotencyKey || "" })));
  tbody.replaceChildren(...rows);
  tbody.closest("section").querySelector(".empty").hidden = entries.length > 0;
}
