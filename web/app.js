// app.js: the page. Signs in, connects, keeps the Store up to date from the client's events, and
// shows one view at a time beside the conversation list, from the address's #fragment:
//   #/            the list (and on wide screens a welcome pane)
//   #/c/{id}      a conversation          #/people     the directory
//   #/new-group   a new group             #/admin      live actors (admin tokens)

import { ParleyApi, ParleyClient, tokenClaims } from './parley.js';
import { h, replaceChildren, srOnly } from './dom.js';
import { Store } from './store.js';
import { showAuth } from './auth.js';
import { ConversationList } from './list.js';
import { ConversationView } from './conversation.js';
import { DirectoryView, NewGroupView } from './people.js';
import { AdminView } from './admin.js';

const TOKEN_KEY = 'parley.token';
const root = document.getElementById('app');

/** Everything of one signed-in session; null while signed out. */
let session = null;

boot();

function boot() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token);
  else signedOut();
}

function signedOut(notice) {
  document.title = 'Parley';
  showAuth(root, {
    notice,
    onSignedIn: ({ token }) => {
      // sessionStorage: the token lives as long as the tab, and is not shared with other tabs.
      sessionStorage.setItem(TOKEN_KEY, token);
      start(token);
    },
  });
}

async function start(token) {
  const api = new ParleyApi(location.origin, token);
  let me;
  try {
    me = await api.get('/api/me');
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    signedOut(err.status === 401 ? 'Your session has expired. Please sign in again.' : err.message);
    return;
  }
  const store = new Store(me);
  const client = new ParleyClient({ baseUrl: location.origin, token, storage: sessionStorage });
  const admin = tokenClaims(token).role === 'admin';
  session = { api, client, store, me, admin, token, view: null, shell: null, disposers: [] };
  // For the browser tests and for curious integrators in the console.
  window.parley = { client, store, api };

  wireEvents(session);
  session.shell = renderShell(session);
  window.addEventListener('hashchange', route);
  route();
  client.connect();
  loadConversations(session);
}

function signOut(notice) {
  if (!session) return;
  const { client, view, disposers } = session;
  view?.destroy();
  for (const dispose of disposers) dispose();
  client.close();
  window.removeEventListener('hashchange', route);
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  window.parley = undefined;
  history.replaceState(null, '', location.pathname);
  signedOut(notice);
}

// ---------------------------------------------------------------------------------------------
// Events from the server into the store

function wireEvents(s) {
  const { client, store } = s;
  const on = (type, fn) => s.disposers.push(client.on(type, fn));

  on('message:new', ({ message }) => {
    if (!store.message(message)) refreshConversation(s, message.conversation_id);
  });
  on('unread:updated', (data) => store.unread(data));
  on('read:updated', (data) => store.read(data));
  on('presence:updated', (data) => store.setPresence(data));
  on('user:updated', ({ user }) => store.userUpdated(user));
  on('typing:updated', ({ conversation_id, user_id, typing }) => store.setTyping(conversation_id, user_id, typing));
  on('conversation:updated', ({ conversation }) => {
    store.upsert(conversation);
    if (!store.conversations.has(conversation.id)) {
      client.untrack(conversation.id);
      return;
    }
    client.track(conversation.id, conversation.last_seq);
    // New people to follow: nobody tells their presence until asked (PROTOCOL.md §3.9), and the
    // conversation may be known already (the page that made it stored the REST answer first).
    const unknown = conversation.members.map((m) => m.user_id).filter((id) => !store.presence.has(id));
    if (unknown.length > 0) queryPresence(s, unknown);
  });
  on('ready', ({ resumed }) => {
    // After a reconnect, the list may have changed while away (new conversations, counts).
    if (resumed) loadConversations(s);
    else if (store.loaded) queryPresence(s, store.contacts());
  });
  on('unauthorized', () => signOut('Your session has expired. Please sign in again.'));

  s.disposers.push(
    store.on('unread', () => updateTitle(s)),
    store.on('conversation', (id) => {
      // Removed from the conversation on screen: go back to the list.
      if (!store.conversations.has(id) && s.view?.conversationId === id) location.hash = '#/';
    }),
  );
}

async function loadConversations(s) {
  const { api, client, store } = s;
  const all = [];
  let cursor = null;
  let total = 0;
  try {
    do {
      const page = await api.get(
        `/api/conversations?limit=100${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`,
      );
      all.push(...page.conversations);
      total = page.total_unread;
      cursor = page.next;
    } while (cursor);
  } catch (err) {
    if (err.status === 401) signOut('Your session has expired. Please sign in again.');
    return; // offline: the next reconnect loads it again
  }
  if (session !== s) return;
  // Messages that arrived while the list was on its way are newer than the list.
  for (const c of all) {
    const known = store.conversations.get(c.id);
    if (known && known.last_seq > c.last_seq)
      Object.assign(c, { last_seq: known.last_seq, last_message: known.last_message });
    client.track(c.id, c.last_seq);
  }
  store.setConversations(all, total);
  queryPresence(s, store.contacts());
}

async function refreshConversation(s, id) {
  try {
    const conversation = await s.api.get(`/api/conversations/${id}`);
    if (session !== s) return;
    s.store.upsert(conversation);
    s.client.track(id, conversation.last_seq);
  } catch {
    // Gone or not ours: nothing to show.
  }
}

async function queryPresence(s, userIds) {
  for (let i = 0; i < userIds.length; i += 100) {
    try {
      const { presence } = await s.client.call('presence:query', { user_ids: userIds.slice(i, i + 100) });
      for (const p of presence) s.store.setPresence(p);
    } catch {
      return; // not connected: 'ready' asks again
    }
  }
}

function updateTitle(s) {
  const total = s.store.totalUnread;
  document.title = total > 0 ? `(${total}) Parley` : 'Parley';
  const badge = s.shell.totalBadge;
  badge.hidden = total === 0;
  replaceChildren(badge, String(total), srOnly(' unread'));
}

// ---------------------------------------------------------------------------------------------
// The shell: header, list, main pane

const STATE_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  closed: 'Disconnected',
};

function renderShell(s) {
  const { client, me } = s;
  const connection = h('span', { class: 'conn', id: 'connection', role: 'status', 'data-state': 'connecting' });
  const showState = ({ state }) => {
    connection.dataset.state = state;
    const waiting = client.pending().length;
    replaceChildren(
      connection,
      h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
      STATE_TEXT[state] || state,
      waiting > 0 && state !== 'connected' ? ` · ${waiting} waiting` : '',
    );
  };
  showState({ state: client.state === 'closed' ? 'connecting' : client.state });
  s.disposers.push(
    client.on('state', showState),
    client.on('outbox', () => showState({ state: client.state })),
  );

  const totalBadge = h('span', { class: 'badge total-unread', id: 'total-unread', hidden: true });
  const navLink = (href, text, extra = {}) => h('a', { href, class: 'nav-link', ...extra }, text);
  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'skip-link', href: '#main', onclick: skipToMain }, 'Skip to content'),
    h(
      'a',
      { class: 'brand', href: '#/' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'P'),
      'Parley',
      totalBadge,
    ),
    connection,
    h(
      'nav',
      { class: 'nav', 'aria-label': 'Main' },
      navLink('#/', 'Chats', { 'data-route': 'home' }),
      navLink('#/people', 'People', { 'data-route': 'people' }),
      navLink('#/new-group', 'New group', { 'data-route': 'new-group' }),
      s.admin ? navLink('#/admin', 'Admin', { 'data-route': 'admin' }) : null,
    ),
    h(
      'div',
      { class: 'account' },
      h('span', { class: 'me', title: `@${me.username}` }, me.display_name),
      h(
        'button',
        { type: 'button', class: 'button button--quiet', id: 'sign-out', onclick: () => signOut() },
        'Sign out',
      ),
    ),
  );

  const list = new ConversationList(s);
  s.disposers.push(() => list.destroy());
  const main = h('main', { class: 'pane', id: 'main', tabindex: '-1' });
  const layout = h(
    'div',
    { class: 'layout' },
    h('aside', { class: 'sidebar', 'aria-label': 'Conversations' }, list.element),
    main,
  );
  replaceChildren(root, header, layout);
  const shell = { header, main, list, totalBadge };
  s.shell = shell;
  updateTitle(s);
  return shell;
}

function skipToMain(event) {
  event.preventDefault();
  const target = document.querySelector('#main textarea, #main input, #main');
  target?.focus();
}

// ---------------------------------------------------------------------------------------------
// Routing

function route() {
  const s = session;
  if (!s) return;
  const hash = location.hash || '#/';
  const match = hash.match(/^#\/c\/([0-9a-f-]{36})$/i);
  let name = 'home';
  if (match) name = 'conversation';
  else if (hash === '#/people') name = 'people';
  else if (hash === '#/new-group') name = 'new-group';
  else if (hash === '#/admin' && s.admin) name = 'admin';

  if (name === 'conversation' && s.view?.conversationId === match[1]) return;
  s.view?.destroy();
  s.view = null;
  document.body.dataset.route = name;
  for (const link of s.shell.header.querySelectorAll('.nav-link')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  switch (name) {
    case 'conversation':
      s.view = new ConversationView(s, match[1]);
      break;
    case 'people':
      s.view = new DirectoryView(s);
      break;
    case 'new-group':
      s.view = new NewGroupView(s);
      break;
    case 'admin':
      s.view = new AdminView(s);
      break;
    default:
      s.view = welcome(s);
  }
  s.shell.list.select(s.view.conversationId || null);
  replaceChildren(s.shell.main, s.view.element);
  s.view.focus?.();
}

/** The wide-screen pane when no conversation is open. */
function welcome(s) {
  const element = h(
    'section',
    { class: 'welcome', 'aria-labelledby': 'welcome-heading' },
    h('h2', { id: 'welcome-heading' }, `Hello, ${s.me.display_name}`),
    h('p', {}, 'Pick a conversation, or find someone to talk to.'),
    h(
      'p',
      { class: 'actions' },
      h('a', { class: 'button button--primary', href: '#/people' }, 'Find people'),
      h('a', { class: 'button', href: '#/new-group' }, 'New group'),
    ),
  );
  return { element, destroy() {} };
}
