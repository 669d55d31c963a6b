// The event stream: /api/stream over a WebSocket that reconnects by itself with since=<last seq>, so
// nothing is missed and nothing is shown twice (a seq already seen is dropped).
//
// States: "connecting" (first connection), "live", "reconnecting" (the socket dropped; retrying with
// backoff), "resynced" (reconnected and the missed events replayed; or the streamer resynced with the
// exchange after a gap of its own). After 410 (since too old) the page resyncs from REST and the
// stream starts again without since.

export const ACCOUNT_TOPICS = ["order", "position", "balance", "protection", "margin_call", "liquidation", "stream"];

export class EventStream {
  constructor(api, { onEvent, onState, onGone, onClose, markets }) {
    this.api = api;
    this.onClose = onClose ?? (() => {});
    this.onEvent = onEvent;
    this.onState = onState;
    this.onGone = onGone;
    this.markets = markets; // () => ["BTCUSDT", ...]: symbols whose mark price and 1m klines to receive
    this.lastSeq = null;
    this.socket = null;
    this.stopped = false;
    this.attempt = 0;
    this.subscribed = "";
    this.timer = null;
  }

  start(since = 0) {
    this.lastSeq = since;
    this.connect();
  }

  topics() {
    const markets = [...new Set(this.markets())].sort();
    return [...ACCOUNT_TOPICS, ...markets.flatMap((s) => [`market.${s}.markPrice`, `market.${s}.kline_1m`])].join(",");
  }

  // Reconnect if the set of market symbols changed (a new position, another chart symbol).
  refreshTopics() {
    if (!this.stopped && this.socket && this.topics() !== this.subscribed) {
      this.socket.onclose = null;
      this.socket.close();
      this.connect(true);
    }
  }

  async connect(quiet = false) {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const again = this.attempt > 0;
    if (!quiet) this.onState(again ? "reconnecting" : "connecting");
    this.subscribed = this.topics();
    const params = { topics: this.subscribed };
    if (this.lastSeq !== null) params.since = this.lastSeq;
    let socket;
    try {
      socket = new WebSocket(await this.api.streamUrl(params));
    } catch (err) {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.onState(again ? "resynced" : "live");
    };
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onClose(close.code, close.reason);
      if (close.code === 4410) {
        this.lastSeq = null; // too old to replay: resync from REST, then live only
        this.onGone();
      }
      if (close.code === 4401 || close.code === 4403) {
        this.onState("refused");
        return;
      }
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.attempt += 1;
    this.onState("reconnecting");
    const delay = Math.min(5000, 250 * 2 ** Math.min(this.attempt, 5));
    this.timer = setTimeout(() => this.connect(), delay);
  }

  receive(event) {
    if (event.type === "error") {
      this.onEvent({ type: "error", time: Date.now(), data: { code: event.code, msg: event.msg } });
      return;
    }
    if (typeof event.seq === "number") {
      if (this.lastSeq !== null && event.seq <= this.lastSeq) return; // a repeat (at-least-once)
      this.lastSeq = event.seq;
    }
    this.onEvent(event);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
  }
}
