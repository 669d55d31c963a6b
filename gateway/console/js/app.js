// The console: sign-in, the live views, and the few actions a person may take, each behind a
// confirmation that says exactly what will happen.
//
// Rendering is batched into animation frames: events only mark what changed and queue feed rows, and
// each frame draws what is dirty once. So a burst of hundreds of events a second costs a few DOM
// updates per frame, and the feed never builds a backlog (window.consoleStats has the figures).

import { Api, ApiError, newIdempotencyKey, rest } from "./api.js";
import { CandleChart } from "./chart.js";
import { EventStream } from "./stream.js";
import {
  PositionsView, clock, el, feedRow, fmt, orderRole, price, renderBalances, renderJournal, renderOrders,
} from "./views.js";

const $ = (selector) => document.querySelector(selector);
const FEED_ROWS = 200; // rows kept in the feed
const SYMBOLS = ["BTCUSDT", "ETHUSDT"];
const INTERVALS = { "1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3, "4h": 14400e3, "1d": 86400e3 };
const SUMMARY_EVERY = 1000; // at most one account summary per second, however many events arrive
const JOURNAL_EVERY = 3000;
const JOURNAL_ROWS = 50;
const SESSION_EVERY = 5000; // the halt flag
const CONNECTION_TEXT = {
  connecting: "connecting…", live: "live", reconnecting: "reconnecting…", resynced: "resynced",
  refused: "refused", offline: "signed out",
};

// Figures for the tests (and anyone curious): events received and drawn, the backlog, frame gaps.
const stats = {
  received: 0, rendered: 0, lastSeq: null, renderedSeq: null, backlog: 0, maxBacklog: 0,
  frames: 0, maxFrameGap: 0, frameGaps: [], lags: [], summaries: 0, marks: 0, lastMark: {},
  state: "offline", closes: [],
};
window.consoleStats = stats;

let session = null;

class Session {
  constructor(api, info) {
    this.api = api;
    this.info = info;
    this.scopes = new Set(info.scopes);
    this.summary = null;
    this.marks = new Map();
    this.markAt = new Map();
    this.summaryAgain = false;
    this.fills = [];
    this.candles = [];
    this.symbol = SYMBOLS[0];
    this.interval = "1m";
    this.pendingFeed = [];
    this.dirty = new Set();
    this.frame = 0;
    this.lastFrame = 0;
    this.summaryTimer = null;
    this.summaryBusy = false;
    this.lastSummary = 0;
    this.timers = [];
    this.stopped = false;
    this.chart = new CandleChart($("#chart"));
    this.positions = new PositionsView($("#positions tbody"), {
      canTrade: () => this.can("trade"),
      onClose: (p) => this.closePosition(p),
    });
    this.stream = new EventStream(api, {
      onEvent: (e) => this.onEvent(e),
      onState: (s) => this.setConnection(s),
      onGone: () => this.loadSummary(),
      onClose: (code, reason) => stats.closes.push({ code, reason, at: Date.now() }),
      markets: () => this.marketSymbols(),
    });
  }

  can(scope) {
    return this.scopes.has(scope);
  }

  async start() {
    this.startedAt = Date.now();
    $("#account").textContent = this.info.account;
    $("#scopes").textContent = [...this.scopes].join(" · ");
    $("#admin-actions").hidden = !this.can("admin");
    document.body.dataset.scopes = [...this.scopes].join(" ");
    this.showHalted(this.info.halted);
    await Promise.all([this.loadSummary(), this.loadKlines(), this.loadJournal()]);
    this.stream.start(0);
    this.timers.push(setInterval(() => this.loadJournal(), JOURNAL_EVERY));
    this.timers.push(setInterval(() => this.loadSession(), SESSION_EVERY));
    this.timers.push(setInterval(() => this.scheduleSummary(), 10_000));
    this.timers.push(setInterval(() => this.loadKlines(), 30_000));
    this.loop = (t) => this.render(t);
    this.frame = requestAnimationFrame(this.loop);
  }

  stop() {
    this.stopped = true;
    this.stream.stop();
    this.timers.forEach(clearInterval);
    clearTimeout(this.summaryTimer);
    cancelAnimationFrame(this.frame);
    this.api.forget();
  }

  marketSymbols() {
    const symbols = new Set([this.symbol]);
    for (const p of this.summary?.positions ?? []) symbols.add(p.symbol);
    return [...symbols];
  }

  // --- data ----------------------------------------------------------------------------------

  async loadSummary() {
    if (this.summaryBusy) {
      this.summaryAgain = true;
      return;
    }
    this.summaryBusy = true;
    try {
      this.summary = await rest.summary(this.api);
      stats.summaries += 1;
      // the summary's mark, unless the stream brought a newer one (symbols without market data have only this)
      const now = performance.now();
      for (const p of this.summary.positions) {
        if (!(now - (this.markAt.get(p.symbol) ?? -1e9) < 3000)) this.marks.set(p.symbol, Number(p.markPrice));
      }
      this.dirty.add("summary");
      this.stream.refreshTopics();
    } catch (err) {
      notify(`Account summary: ${err.message}`, true);
    } finally {
      this.lastSummary = performance.now();
      this.summaryBusy = false;
      if (this.summaryAgain && !this.stopped) {
        this.summaryAgain = false;
        this.scheduleSummary();
      }
    }
  }

  scheduleSummary() {
    if (this.summaryTimer || this.stopped) return;
    const wait = Math.max(100, SUMMARY_EVERY - (performance.now() - this.lastSummary));
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = null;
      this.loadSummary();
    }, wait);
  }

  async loadKlines() {
    const { symbol, interval } = this;
    try {
      const data = await rest.klines(this.api, symbol, interval, 120);
      if (symbol !== this.symbol || interval !== this.interval) return;
      this.candles = data.klines.map((k) => ({
        time: k.time, open: Number(k.open), high: Number(k.high), low: Number(k.low), close: Number(k.close),
      }));
      this.dirty.add("chart");
    } catch (err) {
      notify(`Klines: ${err.message}`, true);
    }
  }

  // The halt flag can change from anywhere (aiqt halt, another console): read with the session.
  async loadSession() {
    try {
      this.showHalted((await rest.session(this.api)).halted);
    } catch {
      // the next read says more; the stream's state shows a broken connection
    }
  }

  showHalted(halted) {
    const badge = $("#halted");
    badge.hidden = halted !== true;
    document.body.dataset.halted = String(halted);
  }

  // The journal is read incrementally: the first time from an hour back, then from the newest entry
  // seen (less a margin: entries are written just after their reply), merged by command id and time.
  async loadJournal() {
    if (this.journalBusy) return;
    this.journalBusy = true;
    const reads = $("#journal-reads").checked;
    if (reads !== this.journalReads) {
      this.journalReads = reads;
      this.journal = [];
      this.journalSince = Date.now() - 3600e3;
    }
    const asked = Date.now();
    try {
      const data = await rest.audit(this.api, this.journalSince, JOURNAL_ROWS, !reads);
      if (reads !== this.journalReads) return;
      const seen = new Set(this.journal.map((e) => `${e.commandId}@${e.time}`));
      const fresh = data.entries.filter((e) => !seen.has(`${e.commandId}@${e.time}`));
      if (fresh.length) {
        this.journal = [...this.journal, ...fresh].sort((a, b) => a.time - b.time).slice(-JOURNAL_ROWS);
        this.dirty.add("journal");
      }
      const newest = this.journal.length ? this.journal[this.journal.length - 1].time : 0;
      this.journalSince = Math.max(newest, asked - 10_000);
      $("#journal-error").textContent = "";
      this.dirty.add("journal");
    } catch (err) {
      $("#journal-error").textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : err.message;
    } finally {
      this.journalBusy = false;
    }
  }

  // --- events --------------------------------------------------------------------------------

  onEvent(e) {
    if (e.type === "market") {
      this.onMarket(e);
      return;
    }
    stats.received += 1;
    if (typeof e.seq === "number") stats.lastSeq = e.seq;
    this.pendingFeed.push(e);
    const d = e.data || {};
    if (e.type === "order" && Number(d.lastFilledQty) > 0) {
      this.fills.push({ symbol: d.symbol, side: d.side, price: Number(d.lastFilledPrice), time: e.time });
      if (this.fills.length > 2000) this.fills.splice(0, 1000);
      this.dirty.add("chart");
    }
    // the streamer resynced with the exchange (a gap on its side): news only when live, not from history
    if (e.type === "stream" && d.status === "resynced" && e.time > this.startedAt) this.setConnection("resynced");
    if (["order", "position", "balance", "protection", "liquidation", "margin_call"].includes(e.type)) {
      this.scheduleSummary();
    }
    if (e.type === "protection" || e.type === "liquidation") setTimeout(() => this.loadJournal(), 300);
  }

  onMarket(e) {
    const d = e.data || {};
    if (e.stream === "markPrice") {
      const mark = Number(d.markPrice);
      this.marks.set(e.symbol, mark);
      this.markAt.set(e.symbol, performance.now());
      stats.marks += 1;
      stats.lastMark[e.symbol] = d.markPrice;
      this.dirty.add("positions");
      if (e.symbol === this.symbol) this.updateCandle(e.time || Date.now(), mark);
    } else if (e.stream === "kline_1m" && e.symbol === this.symbol && this.interval === "1m") {
      const candle = {
        time: d.openTime, open: Number(d.open), high: Number(d.high), low: Number(d.low), close: Number(d.close),
      };
      const last = this.candles[this.candles.length - 1];
      if (last && last.time === candle.time) this.candles[this.candles.length - 1] = candle;
      else if (!last || candle.time > last.time) this.candles.push(candle);
      this.dirty.add("chart");
    }
  }

  updateCandle(time, mark) {
    const period = INTERVALS[this.interval];
    const open = Math.floor(time / period) * period;
    const last = this.candles[this.candles.length - 1];
    if (!last) return;
    if (open > last.time) {
      this.candles.push({ time: open, open: last.close, high: Math.max(last.close, mark), low: Math.min(last.close, mark), close: mark });
      if (this.candles.length > 200) this.candles.shift();
    } else if (open === last.time) {
      last.close = mark;
      last.high = Math.max(last.high, mark);
      last.low = Math.min(last.low, mark);
    }
    this.dirty.add("chart");
  }

  setConnection(state) {
    stats.state = state;
    const badge = $("#connection");
    badge.dataset.state = state;
    badge.textContent = CONNECTION_TEXT[state] ?? state;
    if (state === "resynced") {
      this.loadSummary();
      clearTimeout(this.resyncedTimer);
      this.resyncedTimer = setTimeout(() => {
        if (badge.dataset.state === "resynced") this.setConnection("live");
      }, 4000);
    }
  }

  // --- drawing -------------------------------------------------------------------------------

  render(now) {
    if (this.stopped) return;
    if (this.lastFrame) {
      const gap = now - this.lastFrame;
      stats.maxFrameGap = Math.max(stats.maxFrameGap, gap);
      stats.frameGaps.push(Math.round(gap));
      if (stats.frameGaps.length > 2000) stats.frameGaps.splice(0, 1000);
    }
    this.lastFrame = now;
    stats.frames += 1;
    stats.backlog = this.pendingFeed.length;
    stats.maxBacklog = Math.max(stats.maxBacklog, stats.backlog);
    if (this.pendingFeed.length) this.drawFeed();
    if (this.dirty.has("summary")) {
      this.drawSummary();
      this.dirty.add("positions");
      this.dirty.add("chart");
    }
    if (this.dirty.has("positions") && this.summary) this.positions.update(this.summary.positions, this.marks);
    if (this.dirty.has("chart")) this.drawChart();
    if (this.dirty.has("journal")) renderJournal($("#journal tbody"), this.journal ?? []);
    this.dirty.clear();
    this.frame = requestAnimationFrame(this.loop);
  }

  // Every queued event is counted as shown; only the newest FEED_ROWS become rows (older ones would be
  // pushed out of the list in the same frame anyway).
  drawFeed() {
    const events = this.pendingFeed;
    this.pendingFeed = [];
    const list = $("#feed");
    const rows = events.slice(-FEED_ROWS).reverse().map(feedRow);
    list.prepend(...rows);
    while (list.childElementCount > FEED_ROWS) list.lastElementChild.remove();
    stats.rendered += events.length;
    const last = events.findLast((e) => typeof e.seq === "number");
    if (last) stats.renderedSeq = last.seq;
    // the lag from the event's time to its row: the whole path, bus to screen (a backlog anywhere grows it)
    const newest = events[events.length - 1];
    if (newest.time) {
      stats.lags.push(Date.now() - newest.time);
      if (stats.lags.length > 5000) stats.lags.splice(0, 2500);
    }
    $("#feed-count").textContent = `${stats.rendered} events`;
  }

  drawSummary() {
    renderBalances($("#balances"), this.summary);
    const orders = JSON.stringify(this.summary.activeOrders);
    if (orders !== this.ordersDrawn) { // unchanged rows are left alone: a button is not replaced mid-click
      this.ordersDrawn = orders;
      renderOrders($("#orders tbody"), this.summary.activeOrders, {
        canTrade: () => this.can("trade"),
        onCancel: (o) => this.cancelOrder(o),
      });
    }
    const select = $("#symbol");
    const known = new Set([...SYMBOLS, ...this.summary.positions.map((p) => p.symbol),
      ...this.summary.activeOrders.map((o) => o.symbol)]);
    if ([...select.options].map((o) => o.value).join() !== [...known].join()) {
      select.replaceChildren(...[...known].map((s) => el("option", { value: s, text: s })));
      select.value = this.symbol;
    }
  }

  chartLines() {
    const lines = [];
    if (!this.summary) return lines;
    for (const p of this.summary.positions.filter((x) => x.symbol === this.symbol)) {
      lines.push({ kind: "entry", label: `Entry ${p.direction}`, price: Number(p.entryPrice) });
      if (Number(p.liquidationPrice) > 0) lines.push({ kind: "liquidation", label: "Liq.", price: Number(p.liquidationPrice) });
    }
    for (const o of this.summary.activeOrders.filter((x) => x.symbol === this.symbol)) {
      const role = orderRole(o);
      if (role && Number(o.stopPrice) > 0) lines.push({ kind: role, label: role, price: Number(o.stopPrice) });
    }
    return lines;
  }

  drawChart() {
    const lines = this.chartLines();
    const fills = this.fills.filter((f) => f.symbol === this.symbol);
    this.chart.set({ candles: this.candles, lines, fills, mark: this.marks.get(this.symbol) ?? null });
    this.chart.draw();
    const canvas = $("#chart");
    canvas.dataset.symbol = this.symbol;
    canvas.dataset.interval = this.interval;
    canvas.dataset.candles = String(this.candles.length);
    // The lines drawn, in the DOM too: a legend for people, and something a test can read.
    const legend = $("#chart-lines");
    const text = lines.map((l) => `${l.kind}:${l.price}`).join("|") + `#${fills.length}`;
    if (legend.dataset.drawn !== text) {
      legend.dataset.drawn = text;
      legend.replaceChildren(
        ...lines.map((l) => el("li", { "data-line": l.kind, "data-price": l.price, class: `line-${l.kind}` },
          `${l.label} ${price(l.price)}`)),
        el("li", { "data-fills": fills.length, class: "fills" }, `${fills.length} fill${fills.length === 1 ? "" : "s"} marked`),
      );
    }
  }

  // --- actions -------------------------------------------------------------------------------

  async act(what, confirmation, run) {
    if (!(await ask(confirmation))) return;
    try {
      const reply = await run(newIdempotencyKey(what));
      notify(reply.msg);
    } catch (err) {
      notify(err instanceof ApiError ? `Refused (${err.code}): ${err.message}` : err.message, true);
    }
    this.loadSummary();
    this.loadSession();
    setTimeout(() => this.loadJournal(), 300);
  }

  cancelOrder(o) {
    const role = orderRole(o);
    const what = role === "SL" ? "stop loss" : role === "TP" ? "take profit" : "order";
    const stop = Number(o.stopPrice) ? ` at ${price(o.stopPrice)}` : "";
    const qty = Number(o.origQty) ? `${fmt(o.origQty, 3)} ` : "the whole position ";
    this.act("cancel", {
      title: `Cancel ${what} #${o.orderId}?`,
      text: `Cancel ${what} #${o.orderId} — ${o.side} ${o.type} ${qty}${o.symbol}${stop} — at the exchange.` +
        (role === "SL" ? " The position will then have no stop loss." : "") +
        (role === "TP" ? " The position will then have no take profit." : ""),
      ok: `Cancel ${what}`,
    }, (key) => rest.cancel(this.api, o, key));
  }

  closePosition(p) {
    const side = p.direction === "SHORT" ? "BUY" : "SELL";
    const mark = this.marks.get(p.symbol) ?? Number(p.markPrice);
    this.act("close", {
      title: `Close ${p.symbol} ${p.direction}?`,
      text: `Close the whole ${p.direction} position of ${fmt(p.quantity, 3)} ${p.symbol}: a reduce-only MARKET ${side} ` +
        `order at the market price (mark now ${price(mark)}), then its stop loss and take profit orders are cancelled.`,
      ok: "Close position",
    }, (key) => rest.close(this.api, p, key));
  }

  halt(flatten) {
    const orders = this.summary?.activeOrders.length ?? 0;
    const positions = this.summary?.positions.length ?? 0;
    this.act(flatten ? "halt-flatten" : "halt", {
      title: flatten ? `Halt account ${this.info.account} and close every position?` : `Halt account ${this.info.account}?`,
      text: `Every open order of account ${this.info.account} is cancelled (${orders} now, stop losses and take profits included)` +
        (flatten
          ? `, and every position is closed at the market price (${positions} now).`
          : `. Positions stay open (${positions} now), without stop loss or take profit.`) +
        " Until you resume, every worker refuses opening orders for this account; closes and cancels still work.",
      ok: flatten ? "Halt and close all" : "Halt",
    }, (key) => rest.halt(this.api, flatten, key));
  }

  resume() {
    this.act("resume", {
      title: `Resume account ${this.info.account}?`,
      text: `Lift the halt of account ${this.info.account}: opening orders are accepted again. Nothing is placed by this.`,
      ok: "Resume trading",
    }, (key) => rest.resume(this.api, key));
  }

  async chooseChart() {
    this.symbol = $("#symbol").value;
    this.interval = $("#interval").value;
    this.candles = [];
    this.dirty.add("chart");
    this.stream.refreshTopics();
    await this.loadKlines();
  }
}

// --- the page --------------------------------------------------------------------------------------

function notify(text, error = false) {
  const box = $("#notice");
  box.textContent = text;
  box.className = error ? "error" : "ok";
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function ask({ title, text, ok }) {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function signIn(event) {
  event.preventDefault();
  const keyInput = $("#api-key");
  const secretInput = $("#api-secret");
  const error = $("#signin-error");
  error.textContent = "";
  const secret = secretInput.value;
  secretInput.value = ""; // the CryptoKey below is the only copy kept
  let api;
  try {
    api = await Api.signIn(keyInput.value.trim(), secret);
    const info = await rest.session(api);
    session = new Session(api, info);
  } catch (err) {
    api?.forget();
    error.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : err.message;
    return;
  }
  keyInput.value = "";
  $("#signin").hidden = true;
  $("#console").hidden = false;
  $("#whoami").hidden = false;
  await session.start();
}

// Sign-out forgets everything: the session (and the CryptoKey inside it) is dropped and the page is
// loaded afresh, so no state of the signed-in account survives in memory or in the DOM.
function signOut() {
  session?.stop();
  session = null;
  stats.state = "offline";
  location.replace(location.pathname);
}

function init() {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#halt").addEventListener("click", () => session?.halt(false));
  $("#halt-flatten").addEventListener("click", () => session?.halt(true));
  $("#resume").addEventListener("click", () => session?.resume());
  $("#symbol").addEventListener("change", () => session?.chooseChart());
  $("#interval").addEventListener("change", () => session?.chooseChart());
  $("#journal-reads").addEventListener("change", () => session?.loadJournal());
  $("#interval").replaceChildren(...Object.keys(INTERVALS).map((i) => el("option", { value: i, text: i })));
  $("#symbol").replaceChildren(...SYMBOLS.map((s) => el("option", { value: s, text: s })));
  new ResizeObserver(() => session?.dirty.add("chart")).observe($("#chart"));
  $("#clock").textContent = clock(Date.now()).slice(0, 8);
  setInterval(() => { $("#clock").textContent = clock(Date.now()).slice(0, 8); }, 1000);
  document.body.dataset.ready = "true";
}

init();
