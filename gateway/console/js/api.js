// Signing and REST: every request is signed in the browser, as any AIQT client signs it
// (schemas/signing.py):  signature = hex HMAC-SHA256(secret, METHOD\nPATH\nQUERY\nBODY).
// The secret is imported once as a non-extractable CryptoKey and held only by this object, in memory:
// it is never sent, never stored, and signing out drops the object.

const encoder = new TextEncoder();
const RECV_WINDOW = "10000";

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function encodeQuery(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");
}

export class ApiError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  // Use Api.signIn(); the constructor takes an already imported CryptoKey.
  constructor(base, apiKey, cryptoKey) {
    this.base = base;
    this.apiKey = apiKey;
    this.cryptoKey = cryptoKey;
  }

  static async signIn(apiKey, secret, base = location.origin) {
    if (!globalThis.crypto || !crypto.subtle) {
      throw new Error("This page needs WebCrypto, which browsers give only to https:// or localhost pages.");
    }
    const cryptoKey = await crypto.subtle.importKey(
      "raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
    );
    return new Api(base, apiKey, cryptoKey);
  }

  async sign(method, path, query, body) {
    const text = `${method}\n${path}\n${query}\n${body}`;
    return hex(await crypto.subtle.sign("HMAC", this.cryptoKey, encoder.encode(text)));
  }

  // The query string as sent: params, timestamp, recvWindow, then the signature.
  async signedQuery(method, path, params = {}, body = "") {
    const query = encodeQuery({ ...params, timestamp: Date.now(), recvWindow: RECV_WINDOW });
    return `${query}&signature=${await this.sign(method, path, query, body)}`;
  }

  // {code, msg, data} of a signed request; throws ApiError for anything but code 200.
  async call(method, path, { params = {}, body = null, idempotencyKey = null } = {}) {
    const text = body === null ? "" : JSON.stringify(body);
    const query = await this.signedQuery(method, path, params, text);
    const headers = { "X-API-KEY": this.apiKey };
    if (body !== null) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    const response = await fetch(`${this.base}${path}?${query}`, {
      method, headers, body: body === null ? undefined : text, cache: "no-store",
    });
    let envelope;
    try {
      envelope = await response.json();
    } catch {
      throw new ApiError(response.status, response.status, `HTTP ${response.status}`);
    }
    if (envelope.code !== 200) throw new ApiError(response.status, envelope.code, envelope.msg);
    return envelope;
  }

  async get(path, params = {}) {
    return (await this.call("GET", path, { params })).data;
  }

  // The WebSocket URL of /api/stream, signed (browsers cannot set headers on a WebSocket: apiKey goes
  // in the query, and is signed with the rest).
  async streamUrl(params) {
    const query = await this.signedQuery("GET", "/api/stream", { ...params, apiKey: this.apiKey });
    const url = new URL(this.base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return `${url.origin}/api/stream?${query}`;
  }

  forget() {
    this.cryptoKey = null;
    this.apiKey = null;
  }
}

// The REST calls the console makes.
export const rest = {
  session: (api) => api.get("/api/session"),
  summary: (api) => api.get("/api/account/summary"),
  klines: (api, symbol, interval, limit = 120) => api.get("/api/market/klines", { symbol, interval, limit }),
  audit: (api, since, limit = 100, writes = true) =>
    api.get("/api/audit", { since, limit, writes: writes ? "true" : undefined }),
  cancel: (api, order, key) =>
    api.call("DELETE", `/api/order/${order.orderId}`, { params: { symbol: order.symbol }, idempotencyKey: key }),
  // The whole position: positionSide is the direction (LONG/SHORT) in one-way and hedge mode alike.
  close: (api, position, key) =>
    api.call("POST", "/api/order/close/market", {
      body: { symbol: position.symbol, positionSide: position.direction }, idempotencyKey: key,
    }),
  halt: (api, flatten, key) => api.call("POST", "/api/account/halt", { body: { flatten }, idempotencyKey: key }),
  resume: (api, key) => api.call("POST", "/api/account/resume", { body: {}, idempotencyKey: key }),
};

export function newIdempotencyKey(what) {
  const random = hex(crypto.getRandomValues(new Uint8Array(8)));
  return `ui-${what}-${random}`.slice(0, 64);
}
