// parley.js: a client for Parley's chat protocol v1 (docs/PROTOCOL.md), with no view code in it.
//
// It is the reference for integrators: copy it as it is, or copy its patterns. It depends on
// nothing but the browser (fetch, XMLHttpRequest, WebSocket, crypto.getRandomValues). It is one
// file of about 800 lines on purpose, so that it can be copied whole; its sections are marked
// with banners.
//
//   const api = new ParleyApi(location.origin, token);           // REST with the Bearer token
//   const client = new ParleyClient({ baseUrl: location.origin, token });
//   client.on('message:new', ({ message }) => show(message));     // every message once, in seq order
//   client.on('state', ({ state }) => showConnection(state));     // connected / reconnecting / offline
//   client.connect();
//   client.track(conversationId, lastSeqShown);                   // what sync resumes from
//   client.send(conversationId, 'hello');                         // queued until acknowledged
//   const photo = client.upload(conversationId, file);            // starts at once when online
//   client.send(conversationId, '', [photo]);                     // goes once its files are up
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
// - Files (PROTOCOL.md §2.10) are uploaded over REST before the message that names them is sent;
//   a send whose files are still on their way waits for them, in the pending sends like any
//   other, and the sends of a conversation leave in the order they were made.

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
    if (!response.ok) throw httpError(response.status, json, response.statusText);
    return json;
  }

  /**
   * Uploads a file to a conversation (multipart, one field `file`) and resolves with its
   * AttachmentInfo; rejects with a ParleyError (`network` when the server cannot be reached,
   * `aborted` when `signal` aborts it). XMLHttpRequest rather than fetch: fetch reports no upload
   * progress. `onProgress(fraction)` gets 0 to 1 as the body leaves.
   */
  upload(conversationId, file, { onProgress, signal } = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${this.baseUrl}/api/conversations/${conversationId}/attachments`);
      xhr.setRequestHeader('Accept', 'application/json');
      if (this.token) xhr.setRequestHeader('Authorization', `Bearer ${this.token}`);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
      };
      xhr.onload = () => {
        const json = xhr.responseText ? safeParse(xhr.responseText) : null;
        if (xhr.status >= 200 && xhr.status < 300) resolve(json);
        else reject(httpError(xhr.status, json, xhr.statusText));
      };
      xhr.onerror = () => reject(new ParleyError('network', 'The server cannot be reached.', { status: 0 }));
      xhr.onabort = () => reject(new ParleyError('aborted', 'The upload was cancelled.', { status: 0 }));
      if (signal?.aborted) {
        reject(new ParleyError('aborted', 'The upload was cancelled.', { status: 0 }));
        return;
      }
      signal?.addEventListener('abort', () => xhr.abort());
      const form = new FormData();
      form.append('file', file, file.name);
      xhr.send(form);
    });
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

/** The ParleyError of a REST answer that is not a success (PROTOCOL.md §4.1's error shape). */
function httpError(status, json, statusText) {
  const error = (json && json.error) || {};
  return new ParleyError(error.code || `http_${status}`, error.message || statusText, {
    status,
    retry_after_ms: error.retry_after_ms,
  });
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
  uploadRetryMs: 2_000, // how soon a file of a pending send is tried again after a failure
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
 * - `outbox` `{pending: [{client_id, conversation_id, body, files, created_at}]}` whenever the
 *   pending sends change (the event keeps its first name, which pages listen to). `files` are
 *   uploads, as `upload()` returns them.
 * - `upload` `{upload}` when an upload's `state` or `progress` changes.
 * - `send:failed` `{entry, error}` when the server refused a send for good (too long, not a member,
 *   one of its files refused or lost).
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
    this._sendTurns = new Map(); // conversation id -> promise: its latest send has left (or given up)
    this._uploads = new Set(); // uploads not done yet (started again after a reconnect)
    this._uploading = new Map(); // upload key -> {promise, abort} while its request runs
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
    this._sendTurns.clear(); // the next connection sends everything again, in order
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
    // Files picked while offline, not sent yet: the network is back.
    for (const upload of this._uploads) if (upload.state === 'waiting') this._uploadFile(upload).catch(() => {});
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
   * `files` are uploads of the same conversation (`upload()`): the message goes once they are
   * all on the server, naming them; `body` may then be empty.
   */
  send(conversationId, body, files = []) {
    const entry = {
      client_id: newClientId(),
      conversation_id: conversationId,
      body,
      files,
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

  /**
   * Drops a queued send (the user gave up on it, or the server refused it). Its uploads still
   * running stop; its uploaded files stay: a send refused after a lost ack may have been stored
   * with them after all, and the server removes files never sent by itself (after a day).
   */
  discard(clientId) {
    const entry = this._pendingSends.find((e) => e.client_id === clientId);
    if (!entry) return;
    this._pendingSends = this._pendingSends.filter((e) => e !== entry);
    for (const upload of entry.files) if (upload.state !== 'uploaded') this.discardUpload(upload);
    this._pendingSendsChanged();
  }

  _flushPendingSends() {
    for (const entry of this._pendingSends) this._sendEntry(entry);
  }

  async _sendEntry(entry) {
    if (this._inFlight.has(entry.client_id)) return;
    this._inFlight.add(entry.client_id);
    const socket = this.socket;
    // The sends of a conversation leave in the order they were made: one whose files are still
    // on their way holds back those made after it. A send with nothing before it leaves at once,
    // in this very call.
    const conversationId = entry.conversation_id;
    const before = this._sendTurns.get(conversationId);
    let left;
    const turn = new Promise((resolve) => {
      left = resolve;
    });
    this._sendTurns.set(conversationId, turn);
    const leave = () => {
      left();
      if (this._sendTurns.get(conversationId) === turn) this._sendTurns.delete(conversationId);
    };
    try {
      let attachmentIds = [];
      if (entry.files.length > 0) {
        try {
          attachmentIds = await Promise.all(entry.files.map((upload) => this._uploadFile(upload)));
        } catch (err) {
          this._uploadFailed(entry, err, socket);
          return;
        }
      }
      if (before) await before;
      // Dropped meanwhile (the next connection sends it again), or settled by a sync.
      if (socket !== this.socket || !this._pendingSends.includes(entry)) return;
      const data = { conversation_id: conversationId, body: entry.body, client_id: entry.client_id };
      if (attachmentIds.length > 0) data.attachment_ids = attachmentIds; // the same on every try
      const answer = this.call('message:send', data); // the client_id too: the server stores it once
      leave();
      const ack = await answer;
      this._incoming(ack.message, 'ack');
      this._acknowledged(entry.client_id);
    } catch (err) {
      if (socket !== this.socket) return; // dropped meanwhile: the next connection sends it again
      this._inFlight.delete(entry.client_id);
      if (err.code === 'disconnected' || err.code === 'timeout' || err.code === 'unavailable') {
        // Stays queued; the next connection sends it again. A timeout may be a dead socket.
        if (err.code === 'timeout') this.reconnectNow();
        return;
      }
      if (err.code === 'rate_limited') {
        setTimeout(() => this.state === 'connected' && this._sendEntry(entry), err.retryAfterMs || 1000);
        return;
      }
      // Refused for good (too long, empty, no longer a member, a file not found): tell the caller.
      this.discard(entry.client_id);
      this._emit('send:failed', { entry, error: err });
    } finally {
      leave();
    }
  }

  /** A file of a pending send could not be uploaded: try again later, or give the send up. */
  _uploadFailed(entry, err, socket) {
    if (socket !== this.socket) return; // dropped meanwhile: the next connection tries again
    this._inFlight.delete(entry.client_id);
    if (!this._pendingSends.includes(entry)) return; // discarded meanwhile
    if (transient(err)) {
      // The socket is up but the upload failed (a blip, a busy server): again in a moment.
      const delay = err.retryAfterMs || this.options.uploadRetryMs;
      setTimeout(() => socket === this.socket && this._sendEntry(entry), delay);
      return;
    }
    this.discard(entry.client_id);
    this._emit('send:failed', { entry, error: err });
  }

  _acknowledged(clientId) {
    this._inFlight.delete(clientId);
    const before = this._pendingSends.length;
    this._pendingSends = this._pendingSends.filter((e) => e.client_id !== clientId);
    if (this._pendingSends.length !== before) this._pendingSendsChanged();
  }

  _pendingSendsChanged() {
    this._savePendingSends();
    this._emit('outbox', { pending: [...this._pendingSends] });
  }

  /** Keeps the pending sends in Storage: of their files what is known of them, not their bytes. */
  _savePendingSends() {
    if (!this.storage) return;
    const saved = this._pendingSends.map((entry) => ({
      ...entry,
      files: entry.files.map(({ key, conversation_id, filename, size, content_type, id }) => ({
        key,
        conversation_id,
        filename,
        size,
        content_type,
        id,
      })),
    }));
    try {
      this.storage.setItem(this._pendingSendsKey(), JSON.stringify(saved));
    } catch {
      // A full or disabled storage only loses the reload-proofing.
    }
  }

  _pendingSendsKey() {
    // The key keeps its first name, so that sends saved by an earlier version are still found.
    return `parley.outbox.${tokenClaims(this.token).sub || 'anonymous'}`;
  }

  _loadPendingSends() {
    if (!this.storage) return [];
    const saved = safeParse(this.storage.getItem(this._pendingSendsKey()) || '[]');
    if (!Array.isArray(saved)) return [];
    // A file that was not on the server before the reload is `lost`: its send fails, saying so.
    return saved.map((entry) => ({
      ...entry,
      files: (entry.files || []).map((f) => ({
        ...f,
        file: null,
        state: f.id ? 'uploaded' : 'lost',
        progress: f.id ? 1 : 0,
        attachment: null,
        error: null,
      })),
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Files

  /**
   * A file to send in a conversation (PROTOCOL.md §2.10): uploaded at once when the browser is
   * online, else when the connection is back or its message goes. Returns the upload, for send()
   * or discardUpload(): `{key, conversation_id, filename, size, content_type, file, state,
   * progress, id, attachment, error}`. `state` is `waiting` (for the network), `uploading`
   * (`progress` goes from 0 to 1), `uploaded` (`id` and `attachment`, the AttachmentInfo, are
   * set), `failed` (`error` says why: too large, a type the server does not take…), `discarded`,
   * or `lost`. The bytes stay in memory only (Storage is no place for files of megabytes): a page
   * reload loses a file not uploaded yet, which makes it `lost`.
   */
  upload(conversationId, file) {
    const upload = {
      key: newClientId(),
      conversation_id: conversationId,
      filename: file.name || 'file',
      size: file.size,
      content_type: file.type,
      file,
      state: 'waiting',
      progress: 0,
      id: null,
      attachment: null,
      error: null,
    };
    this._uploads.add(upload);
    if (navigator.onLine !== false) this._uploadFile(upload).catch(() => {});
    return upload;
  }

  /**
   * Gives up an upload that was not sent: stops it, or removes the file from the server (an
   * unsent file is simply gone there).
   */
  discardUpload(upload) {
    const uploaded = upload.state === 'uploaded';
    this._uploads.delete(upload);
    this._setUpload(upload, { state: 'discarded' });
    this._uploading.get(upload.key)?.abort.abort();
    // Offline the removal fails; the server removes unsent files after a day anyway.
    if (uploaded) this.api.delete(`/api/attachments/${upload.id}`).catch(() => {});
  }

  /** Uploads a file, once however many ask (they share the request); resolves with its id. */
  _uploadFile(upload) {
    if (upload.state === 'uploaded') return Promise.resolve(upload.id);
    if (upload.state === 'discarded') return Promise.reject(new ParleyError('aborted', 'The upload was cancelled.'));
    const running = this._uploading.get(upload.key);
    if (running) return running.promise;
    if (!upload.file) {
      const message = `${upload.filename} was lost when the page was reloaded: attach it again.`;
      return Promise.reject(new ParleyError('file_lost', message));
    }
    const abort = new AbortController();
    this._setUpload(upload, { state: 'uploading', progress: 0, error: null });
    const promise = this.api
      .upload(upload.conversation_id, upload.file, {
        signal: abort.signal,
        onProgress: (progress) => this._setUpload(upload, { progress }),
      })
      .then(
        (info) => {
          this._uploading.delete(upload.key);
          if (upload.state === 'discarded') {
            // Given up while the answer was on its way.
            this.api.delete(`/api/attachments/${info.id}`).catch(() => {});
            throw new ParleyError('aborted', 'The upload was cancelled.');
          }
          this._uploads.delete(upload);
          this._setUpload(upload, { state: 'uploaded', progress: 1, id: info.id, attachment: info });
          this._savePendingSends(); // from now on a reload keeps it: the server has it
          return info.id;
        },
        (err) => {
          this._uploading.delete(upload.key);
          if (upload.state !== 'discarded') {
            if (!transient(err)) this._uploads.delete(upload);
            this._setUpload(upload, { state: transient(err) ? 'waiting' : 'failed', error: err });
          }
          throw new ParleyError(err.code, `${upload.filename}: ${err.message}`, {
            status: err.status,
            retry_after_ms: err.retryAfterMs,
          });
        },
      );
    this._uploading.set(upload.key, { promise, abort });
    return promise;
  }

  _setUpload(upload, changes) {
    Object.assign(upload, changes);
    this._emit('upload', { upload });
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

/** Errors worth another try later: the network, or a server busy for a moment. */
function transient(err) {
  return ['network', 'unavailable', 'timeout', 'rate_limited'].includes(err.code);
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
