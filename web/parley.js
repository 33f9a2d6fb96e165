// parley.js: a client for Parley's chat protocol v1 (docs/PROTOCOL.md), with no view code in it.
//
// It is the reference for integrators: copy it as it is, or copy its patterns. It depends on
// nothing but the browser (fetch, WebSocket, crypto.getRandomValues). It is one file of about
// 600 lines on purpose, so that it can be copied whole; its sections are marked with banners.
//
//   const api = new ParleyApi(location.origin, token);           // REST with the Bearer token
//   const client = new ParleyClient({ baseUrl: location.origin, token });
//   client.on('message:new', ({ message }) => show(message));     // every message once, in seq order
//   client.on('state', ({ state }) => showConnection(state));     // connected / reconnecting / offline
//   client.connect();
//   client.track(conversationId, lastSeqShown);                   // what sync resumes from
//   client.send(conversationId, 'hello');                         // queued until acknowledged
//   await client.call('read:mark', { conversation_id });           // any command: ack data or throws
//
// What it takes care of:
// - `call(type, data)` sends a command with a fresh `ref` and resolves with the ack's data, or
//   rejects with a ParleyError (the protocol's error code, or `timeout` / `disconnected`).
// - Reconnects after any drop, with exponential backoff and jitter; waits for the browser to be
//   online again rather than retrying while it is offline.
// - On every (re)connect, asks `sync` from the last seq seen of each tracked conversation, and
//   hands what was missed to the same `message:new` listeners, in seq order.
// - Sends are kept as pending sends: each has a client_id, stays queued until its ack, and is sent
//   again with the same client_id after a reconnect, so the server stores it once.
// - A message is handed to listeners once, whichever way it came (event, ack, sync): by id.

/** An error answer of the protocol: `code` is for programs, `message` for people. */
export class ParleyError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'ParleyError';
    this.code = code;
    this.status = details.status;
    this.retryAfterMs = details.retry_after_ms;
  }
}

/** REST calls (PROTOCOL.md §2): JSON in and out, the token as a Bearer header. */
export class ParleyApi {
  constructor(baseUrl, token = null) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.token = token;
  }

  /** Resolves with the parsed JSON body (null for 204); rejects with a ParleyError. */
  async request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ParleyError('network', 'The server cannot be reached.', { status: 0 });
    }
    const text = await response.text();
    const json = text ? safeParse(text) : null;
    if (!response.ok) {
      const error = (json && json.error) || {};
      throw new ParleyError(error.code || `http_${response.status}`, error.message || response.statusText, {
        status: response.status,
        retry_after_ms: error.retry_after_ms,
      });
    }
    return json;
  }

  get(path) {
    return this.request('GET', path);
  }
  post(path, body = {}) {
    return this.request('POST', path, body);
  }
  delete(path) {
    return this.request('DELETE', path);
  }

  /** Built-in accounts: `{token, user}`. */
  register(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this.post('/api/auth/register', body);
  }
  login(username, password) {
    return this.post('/api/auth/login', { username, password });
  }
}

/** The claims of a JWT, read without checking it (the server checks it): for `role` and `exp`. */
export function tokenClaims(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(payload), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

const DEFAULTS = {
  callTimeoutMs: 10_000, // how long a command waits for its ack
  backoffInitialMs: 500, // the first reconnect delay...
  backoffMaxMs: 15_000, // ...doubling up to this
  syncLimit: 200, // messages per conversation per sync round
  seenIdsKept: 5_000, // message ids remembered for de-duplication
};

/**
 * One user's connection: the WebSocket (PROTOCOL.md §3), kept open for as long as it is wanted.
 *
 * Events (subscribe with `on(type, fn)`; `fn` gets the event's data):
 * - every server event by its type: `message:new`, `typing:updated`, `read:updated`,
 *   `unread:updated`, `presence:updated`, `conversation:updated`. `message:new` is delivered once
 *   per message id, in seq order per conversation, including messages recovered by sync and the
 *   client's own sends (its data also has `source`: `event`, `ack` or `sync`).
 * - `state` `{state, retryInMs?}`: `connecting`, `connected`, `reconnecting`, `offline`, `closed`.
 * - `ready` `{user, session_id, resumed}` after `session:ready` (and before sync runs).
 * - `synced` `{ok, resumed}` once the sync after a (re)connect is done (what it found has been
 *   handed to `message:new` by then); the time to ask for anything else, such as a join.
 * - `outbox` `{pending: [{client_id, conversation_id, body, created_at}]}` whenever the pending
 *   sends change (the event keeps its first name, which pages listen to).
 * - `send:failed` `{entry, error}` when the server refused a send for good (too long, not a member).
 * - `unauthorized` `{}` when the token was refused or expired: connect again with a new one.
 */
export class ParleyClient {
  constructor({ baseUrl, token, options = {}, storage = null }) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.token = token;
    this.options = { ...DEFAULTS, ...options };
    this.api = new ParleyApi(this.baseUrl, token);
    this.storage = storage; // optional Storage (sessionStorage): pending sends survive a reload

    this.state = 'closed';
    this.socket = null;
    this.user = null;
    this.heartbeatMs = 15_000;

    this._listeners = new Map(); // type -> Set of functions
    this._pending = new Map(); // ref -> {resolve, reject, timer}
    this._nextRef = 1;
    this._lastSeq = new Map(); // conversation id -> highest seq handed out, in order
    this._seenIds = new Set(); // message ids already handed out (insertion ordered, bounded)
    this._pendingSends = this._loadPendingSends(); // unacknowledged sends, oldest first
    this._inFlight = new Set(); // client_ids sent on the current socket, waiting for their ack
    this._attempt = 0; // failed connects in a row, for the backoff
    this._retryTimer = null;
    this._heartbeatTimer = null;
    this._lastHeard = 0;
    this._wanted = false; // connect() was called and close() was not
    this._everReady = false;

    this._onOnline = () => this._online();
    this._onOffline = () => this._offline();
  }

  // -------------------------------------------------------------------------------------------
  // Subscriptions

  /** Calls `fn(data)` on each event of `type`; returns the function that unsubscribes. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type)?.delete(fn);
  }

  _emit(type, data) {
    for (const fn of this._listeners.get(type) || []) {
      try {
        fn(data);
      } catch (err) {
        console.error(`parley: a ${type} listener failed`, err);
      }
    }
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, ...extra });
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  /** Opens the WebSocket, and keeps it open until close(). */
  connect() {
    if (this._wanted) return;
    this._wanted = true;
    window.addEventListener('online', this._onOnline);
    window.addEventListener('offline', this._onOffline);
    this._open();
  }

  /** Closes for good (sign out): no reconnect, pending calls fail. */
  close() {
    this._wanted = false;
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('offline', this._onOffline);
    clearTimeout(this._retryTimer);
    this._drop(1000, 'closed by the client');
    this._setState('closed');
  }

  /** Closes the current socket as if the network dropped it; the client reconnects. */
  reconnectNow() {
    if (!this._wanted) return;
    this._drop(4000, 'reconnect');
    this._scheduleReconnect();
  }

  _open() {
    clearTimeout(this._retryTimer);
    if (!this._wanted || this.socket) return;
    if (navigator.onLine === false) {
      this._setState('offline');
      return; // the 'online' event calls _open again
    }
    this._setState(this._everReady ? 'reconnecting' : 'connecting');
    const url = new URL('/ws', this.baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', this.token); // browsers cannot set headers on a WebSocket
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      if (socket === this.socket) this._receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return; // an old socket we already let go of
      this._lost(event.code, opened);
    };
  }

  /** Lets go of the current socket (if any) and fails what waited on it. */
  _drop(code, reason) {
    const socket = this.socket;
    this.socket = null;
    clearInterval(this._heartbeatTimer);
    this._inFlight.clear();
    for (const [ref, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new ParleyError('disconnected', 'The connection was lost.'));
      this._pending.delete(ref);
    }
    if (socket && socket.readyState <= WebSocket.OPEN) {
      try {
        socket.close(code, reason);
      } catch {
        socket.close();
      }
    }
  }

  async _lost(code, opened) {
    this._drop(1000, 'lost');
    if (!this._wanted) return;
    if (code === 4001) {
      // The token expired while connected (PROTOCOL.md §1).
      this._unauthorized();
      return;
    }
    if (!opened) {
      // A refused upgrade looks like any failed connect to a browser; ask REST whether the token
      // is the reason, so a dead token does not retry forever.
      try {
        await this.api.get('/api/me');
      } catch (err) {
        if (err.status === 401) {
          this._unauthorized();
          return;
        }
      }
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (!this._wanted) return;
    if (navigator.onLine === false) {
      this._setState('offline');
      return;
    }
    // Exponential backoff with "equal jitter": half the delay fixed, half random, so that many
    // clients dropped at once by a restarting server do not come back in step.
    const { backoffInitialMs, backoffMaxMs } = this.options;
    const ceiling = Math.min(backoffMaxMs, backoffInitialMs * 2 ** this._attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this._attempt += 1;
    this._setState('reconnecting', { retryInMs: delay });
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _online() {
    if (!this._wanted) return;
    this._attempt = 0;
    if (!this.socket) this._open();
  }

  _offline() {
    if (!this._wanted) return;
    // The socket may linger half-open for a long time: let it go now, and wait for 'online'.
    clearTimeout(this._retryTimer);
    this._drop(4000, 'offline');
    this._setState('offline');
  }

  _unauthorized() {
    this._wanted = false;
    clearTimeout(this._retryTimer);
    this._setState('closed');
    this._emit('unauthorized', {});
  }

  /** After `session:ready`: sync what was missed, then send what is still queued. */
  async _ready(data) {
    const resumed = this._everReady;
    this._everReady = true;
    this._attempt = 0;
    this.user = data.user;
    this.heartbeatMs = data.heartbeat_ms || this.heartbeatMs;
    this._startHeartbeat();
    this._setState('connected');
    this._emit('ready', { user: data.user, session_id: data.session_id, resumed });
    const socket = this.socket;
    let ok = true;
    try {
      await this.syncAll();
    } catch (err) {
      ok = false;
      if (socket === this.socket && err.code !== 'disconnected') console.warn('parley: sync failed', err);
    }
    if (socket !== this.socket) return; // dropped meanwhile: the next connection does it all again
    this._emit('synced', { ok, resumed });
    this._flushPendingSends();
  }

  /** An application ping when the server has been quiet, to find half-open connections. */
  _startHeartbeat() {
    clearInterval(this._heartbeatTimer);
    this._lastHeard = Date.now();
    this._heartbeatTimer = setInterval(() => {
      if (Date.now() - this._lastHeard < this.heartbeatMs) return;
      this.call('ping', {}, { timeoutMs: this.heartbeatMs }).catch((err) => {
        if (err.code === 'timeout') this.reconnectNow();
      });
    }, this.heartbeatMs);
  }

  // -------------------------------------------------------------------------------------------
  // Commands

  /**
   * Sends a command and resolves with its ack data; rejects with a ParleyError: the server's
   * error, `timeout` when no reply came in time, `disconnected` when there is no connection.
   */
  call(type, data = {}, { timeoutMs = this.options.callTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN || this.state !== 'connected') {
        reject(new ParleyError('disconnected', 'Not connected.'));
        return;
      }
      const ref = String(this._nextRef++);
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new ParleyError('timeout', `No answer to ${type} in time.`));
      }, timeoutMs);
      this._pending.set(ref, { resolve, reject, timer });
      socket.send(JSON.stringify({ type, ref, data }));
    });
  }

  _receive(text) {
    this._lastHeard = Date.now();
    const frame = safeParse(text);
    if (!frame || typeof frame.type !== 'string') return;
    const { type, data } = frame;
    if ((type === 'ack' || type === 'error') && frame.ref !== undefined) {
      const pending = this._pending.get(String(frame.ref));
      if (!pending) return; // timed out already
      this._pending.delete(String(frame.ref));
      clearTimeout(pending.timer);
      if (type === 'ack') pending.resolve(data || {});
      else pending.reject(new ParleyError(data?.code || 'internal', data?.message, data || {}));
      return;
    }
    switch (type) {
      case 'session:ready':
        this._ready(data);
        break;
      case 'message:new':
        this._incoming(data.message, 'event');
        break;
      case 'error':
        console.warn('parley: error without ref', data);
        break;
      default:
        this._emit(type, data);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Messages: order, de-duplication, sync

  /**
   * Tells the client that the caller already shows a conversation up to `seq` (from a page of
   * history, a join, the conversation list). Sync resumes from there.
   */
  track(conversationId, seq) {
    const current = this._lastSeq.get(conversationId);
    if (current === undefined || seq > current) this._lastSeq.set(conversationId, seq);
  }

  /** Stops syncing a conversation (left or removed). */
  untrack(conversationId) {
    this._lastSeq.delete(conversationId);
  }

  /** The highest seq handed out for a conversation, or undefined. */
  lastSeq(conversationId) {
    return this._lastSeq.get(conversationId);
  }

  /** Marks messages the caller got elsewhere (history pages) as seen, so they are not handed out. */
  markSeen(messages) {
    for (const message of messages) this._remember(message.id);
  }

  _remember(id) {
    this._seenIds.add(id);
    if (this._seenIds.size > this.options.seenIdsKept) {
      // Sets iterate in insertion order: drop the oldest.
      this._seenIds.delete(this._seenIds.values().next().value);
    }
  }

  /** Every message from the server passes here once: by id, and in seq order per conversation. */
  _incoming(message, source) {
    if (!message || this._seenIds.has(message.id)) return;
    const conversationId = message.conversation_id;
    const last = this._lastSeq.get(conversationId);
    if (last !== undefined && message.seq > last + 1) {
      // A gap (PROTOCOL.md §3): fetch from what we have; the sync brings this message as well.
      this._syncSome([conversationId]).catch(() => {});
      return;
    }
    this._remember(message.id);
    if (last === undefined || message.seq > last) this._lastSeq.set(conversationId, message.seq);
    if (message.client_id && this.user && message.sender_id === this.user.id) {
      this._acknowledged(message.client_id);
    }
    this._emit('message:new', { message, source });
  }

  /** Syncs every tracked conversation from its last seq. */
  syncAll() {
    return this._syncSome([...this._lastSeq.keys()]);
  }

  async _syncSome(conversationIds) {
    let cursors = conversationIds
      .filter((id) => this._lastSeq.has(id))
      .map((id) => ({ conversation_id: id, after_seq: this._lastSeq.get(id) }));
    // The server takes a bounded batch per call; `has_more` asks for another round.
    while (cursors.length > 0) {
      const batch = cursors.slice(0, 100);
      const answer = await this.call('sync', { conversations: batch, limit: this.options.syncLimit });
      const again = [];
      for (const result of answer.conversations || []) {
        for (const message of result.messages) this._incoming(message, 'sync');
        if (result.has_more) {
          again.push({ conversation_id: result.conversation_id, after_seq: this._lastSeq.get(result.conversation_id) });
        }
      }
      cursors = cursors.slice(100).concat(again);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Pending sends

  /**
   * Queues a message and sends it as soon as the connection allows. Returns the pending entry;
   * the message itself arrives through `message:new` once stored (its `client_id` matches).
   */
  send(conversationId, body) {
    const entry = {
      client_id: newClientId(),
      conversation_id: conversationId,
      body,
      created_at: new Date().toISOString(),
    };
    this._pendingSends.push(entry);
    this._pendingSendsChanged();
    if (this.state === 'connected') this._sendEntry(entry);
    return entry;
  }

  /** Unacknowledged sends, oldest first. */
  pending(conversationId) {
    return this._pendingSends.filter((e) => conversationId === undefined || e.conversation_id === conversationId);
  }

  /** Drops a queued send (the user gave up on it). */
  discard(clientId) {
    this._pendingSends = this._pendingSends.filter((e) => e.client_id !== clientId);
    this._pendingSendsChanged();
  }

  _flushPendingSends() {
    for (const entry of this._pendingSends) this._sendEntry(entry);
  }

  async _sendEntry(entry) {
    if (this._inFlight.has(entry.client_id)) return;
    this._inFlight.add(entry.client_id);
    const socket = this.socket;
    try {
      const ack = await this.call('message:send', {
        conversation_id: entry.conversation_id,
        body: entry.body,
        client_id: entry.client_id, // the same on every try: the server stores it once
      });
      this._incoming(ack.message, 'ack');
      this._acknowledged(entry.client_id);
    } catch (err) {
      this._inFlight.delete(entry.client_id);
      if (err.code === 'disconnected' || err.code === 'timeout' || err.code === 'unavailable') {
        // Stays queued; the next connection sends it again. A timeout may be a dead socket.
        if (err.code === 'timeout' && socket === this.socket) this.reconnectNow();
        return;
      }
      if (err.code === 'rate_limited') {
        setTimeout(() => this.state === 'connected' && this._sendEntry(entry), err.retryAfterMs || 1000);
        return;
      }
      // Refused for good (too long, empty, no longer a member): tell the caller.
      this.discard(entry.client_id);
      this._emit('send:failed', { entry, error: err });
    }
  }

  _acknowledged(clientId) {
    this._inFlight.delete(clientId);
    const before = this._pendingSends.length;
    this._pendingSends = this._pendingSends.filter((e) => e.client_id !== clientId);
    if (this._pendingSends.length !== before) this._pendingSendsChanged();
  }

  _pendingSendsChanged() {
    if (this.storage) {
      try {
        this.storage.setItem(this._pendingSendsKey(), JSON.stringify(this._pendingSends));
      } catch {
        // A full or disabled storage only loses the reload-proofing.
      }
    }
    this._emit('outbox', { pending: [...this._pendingSends] });
  }

  _pendingSendsKey() {
    // The key keeps its first name, so that sends saved by an earlier version are still found.
    return `parley.outbox.${tokenClaims(this.token).sub || 'anonymous'}`;
  }

  _loadPendingSends() {
    if (!this.storage) return [];
    const saved = safeParse(this.storage.getItem(this._pendingSendsKey()) || '[]');
    return Array.isArray(saved) ? saved : [];
  }
}

/**
 * A random UUID v4. crypto.randomUUID exists only in secure contexts (https or localhost), and a
 * server on a LAN address is often opened over plain http; getRandomValues works everywhere.
 */
function newClientId() {
  if (globalThis.crypto?.randomUUID && globalThis.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
