// A candlestick chart drawn on a <canvas>, with horizontal price lines (entry, stop loss, take profit,
// liquidation) and the account's fills marked as triangles. No library: a few hundred candles and a
// handful of lines are cheap to redraw whole, and nothing has to be fetched or bundled.

const COLORS = {
  up: "#26a69a", down: "#ef5350", grid: "#2a2f3a", text: "#9aa4b2", bg: "#131722",
  entry: "#e0e0e0", SL: "#ef5350", TP: "#26a69a", liquidation: "#ff9800", mark: "#4f8cff",
  buy: "#26a69a", sell: "#ef5350",
};
const AXIS = 76; // px for the price axis on the right
const FOOT = 22; // px for the time axis

export class CandleChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.candles = [];
    this.lines = [];
    this.fills = [];
    this.mark = null;
  }

  set({ candles, lines, fills, mark }) {
    if (candles !== undefined) this.candles = candles;
    if (lines !== undefined) this.lines = lines;
    if (fills !== undefined) this.fills = fills;
    if (mark !== undefined) this.mark = mark;
  }

  // The price range shown: the candles, and every line but a liquidation price far outside them.
  range() {
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of this.candles) {
      lo = Math.min(lo, c.low);
      hi = Math.max(hi, c.high);
    }
    if (!Number.isFinite(lo)) return null;
    const span = Math.max(hi - lo, hi * 0.002);
    for (const line of this.lines) {
      const far = line.kind === "liquidation" && (line.price < lo - span || line.price > hi + span);
      if (!far) {
        lo = Math.min(lo, line.price);
        hi = Math.max(hi, line.price);
      }
    }
    const pad = (hi - lo) * 0.06 || hi * 0.001;
    return [lo - pad, hi + pad];
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.fillStyle = COLORS.bg;
    g.fillRect(0, 0, width, height);
    const range = this.range();
    if (!range) {
      g.fillStyle = COLORS.text;
      g.font = "13px system-ui, sans-serif";
      g.fillText("No candles yet", 12, 24);
      return;
    }
    const [lo, hi] = range;
    const plotW = width - AXIS;
    const plotH = height - FOOT;
    const y = (price) => plotH - ((price - lo) / (hi - lo)) * plotH;
    const n = this.candles.length;
    const step = plotW / Math.max(n, 1);
    const x = (i) => i * step + step / 2;

    // grid and price axis
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    const ticks = 6;
    for (let t = 0; t <= ticks; t += 1) {
      const price = lo + ((hi - lo) * t) / ticks;
      const yy = Math.round(y(price)) + 0.5;
      g.strokeStyle = COLORS.grid;
      g.beginPath();
      g.moveTo(0, yy);
      g.lineTo(plotW, yy);
      g.stroke();
      g.fillStyle = COLORS.text;
      g.fillText(formatPrice(price), plotW + 6, Math.min(plotH - 2, Math.max(10, yy + 4)));
    }
    // time axis: a few labels
    const every = Math.max(1, Math.ceil(n / 6));
    for (let i = Math.floor(every / 2); i < n; i += every) {
      const d = new Date(this.candles[i].time);
      const label = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
      g.fillStyle = COLORS.text;
      g.fillText(label, x(i) - 14, height - 6);
    }

    // candles
    const body = Math.max(1, step * 0.7);
    this.candles.forEach((c, i) => {
      const color = c.close >= c.open ? COLORS.up : COLORS.down;
      g.strokeStyle = color;
      g.fillStyle = color;
      const cx = Math.round(x(i)) + 0.5;
      g.beginPath();
      g.moveTo(cx, y(c.high));
      g.lineTo(cx, y(c.low));
      g.stroke();
      const top = y(Math.max(c.open, c.close));
      const h = Math.max(1, Math.abs(y(c.open) - y(c.close)));
      g.fillRect(cx - body / 2, top, body, h);
    });

    // price lines (a line outside the range is pinned to the edge, with an arrow)
    for (const line of this.lines) {
      const color = COLORS[line.kind] || COLORS.entry;
      const inside = line.price >= lo && line.price <= hi;
      const yy = Math.round(inside ? y(line.price) : line.price < lo ? plotH - 1 : 1) + 0.5;
      g.strokeStyle = color;
      g.setLineDash(line.kind === "entry" ? [] : [6, 4]);
      g.beginPath();
      g.moveTo(0, yy);
      g.lineTo(plotW, yy);
      g.stroke();
      g.setLineDash([]);
      const label = `${line.label} ${formatPrice(line.price)}${inside ? "" : line.price < lo ? " ↓" : " ↑"}`;
      const w = g.measureText(label).width + 8;
      g.fillStyle = color;
      g.fillRect(plotW - w - 4, yy - 8, w, 16);
      g.fillStyle = COLORS.bg;
      g.fillText(label, plotW - w, yy + 4);
    }

    // the mark price
    if (this.mark !== null && this.mark >= lo && this.mark <= hi) {
      const yy = Math.round(y(this.mark)) + 0.5;
      g.fillStyle = COLORS.mark;
      g.fillRect(plotW, yy - 8, AXIS, 16);
      g.fillStyle = "#fff";
      g.fillText(formatPrice(this.mark), plotW + 6, yy + 4);
    }

    // fills: ▲ buy below the price, ▼ sell above, in the candle of their time
    const first = n ? this.candles[0].time : 0;
    const span = n > 1 ? this.candles[1].time - this.candles[0].time : 60000;
    for (const fill of this.fills) {
      const i = Math.floor((fill.time - first) / span);
      if (i < 0 || i >= n || fill.price < lo || fill.price > hi) continue;
      const cx = x(i);
      const cy = y(fill.price);
      const buy = fill.side === "BUY";
      g.fillStyle = buy ? COLORS.buy : COLORS.sell;
      g.strokeStyle = "#fff";
      g.beginPath();
      g.moveTo(cx, cy);
      g.lineTo(cx - 6, buy ? cy + 10 : cy - 10);
      g.lineTo(cx + 6, buy ? cy + 10 : cy - 10);
      g.closePath();
      g.fill();
      g.stroke();
    }
  }
}

export function formatPrice(value) {
  const digits = Math.abs(value) >= 1000 ? 2 : Math.abs(value) >= 1 ? 4 : 6;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
