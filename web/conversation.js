// conversation.js: one conversation: the history (older pages on scroll up), live messages and
// their files (dom.js draws them), sends not acknowledged yet with their uploads, "X is typing…",
// read receipts on one's own messages, the other person's presence, the members panel
// (members.js) and the composer (composer.js).
//
// It is one file of about 500 lines: every part shares the list of messages on screen and the
// scroll position, which splitting would pass back and forth.

import {
  h,
  replaceChildren,
  avatar,
  timeOfDay,
  fullTime,
  presenceText,
  attachmentView,
  uploadView,
  updateUpload,
} from './dom.js';
import { Composer } from './composer.js';
import { MembersPanel } from './members.js';

const PAGE = 50; // messages per history page
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 120;

export class ConversationView {
  constructor(session, conversationId) {
    this.session = session;
    this.conversationId = conversationId;
    this.messages = new Map(); // message id -> Message, everything shown
    this.nodes = new Map(); // message id -> <li>
    this.pendingNodes = new Map(); // client_id -> <li>, sends not acknowledged yet
    this.attachmentMessages = new Map(); // attachment id -> id of the message that shows it
    this.oldestSeq = null;
    this.newestSeq = 0;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.loaded = false;
    this.lastMarked = 0; // the seq of the last read:mark sent
    this.disposers = [];
    this.build();
    this.subscribe();
    this.renderHeader();
    this.renderTyping();
    this.renderPending();
    if (session.client.state === 'connected') this.join();
  }

  // -------------------------------------------------------------------------------------------
  // Layout

  build() {
    const id = this.conversationId;
    this.titleEl = h('h2', { class: 'conv-name', id: 'conversation-title' });
    this.subtitleEl = h('p', { class: 'conv-sub', id: 'conversation-subtitle' });
    this.avatarSlot = h('span', { class: 'avatar-slot' });
    this.membersButton = h(
      'button',
      {
        type: 'button',
        class: 'button button--small',
        'aria-expanded': 'false',
        'aria-controls': 'members-panel',
        hidden: true,
        onclick: () => this.toggleMembers(),
      },
      'Members',
    );
    const header = h(
      'header',
      { class: 'conv-head' },
      h('a', { class: 'back', href: '#/', 'aria-label': 'Back to chats' }, '‹'),
      this.avatarSlot,
      h('div', { class: 'conv-head-text' }, this.titleEl, this.subtitleEl),
      this.membersButton,
    );

    this.olderButton = h(
      'button',
      { type: 'button', class: 'link-button', onclick: () => this.loadOlder() },
      'Load older messages',
    );
    this.olderEl = h('div', { class: 'older', hidden: true }, this.olderButton);
    this.list = h('ol', {
      class: 'messages',
      id: 'messages',
      role: 'log',
      'aria-live': 'polite',
      'aria-labelledby': 'conversation-title',
    });
    this.pendingList = h('ol', {
      class: 'messages messages--pending',
      id: 'pending-messages',
      'aria-label': 'Messages not sent yet',
    });
    this.status = h('p', { class: 'view-status', role: 'status' }, 'Loading…');
    this.scroller = h(
      'div',
      { class: 'log-scroll', id: 'message-scroller', onscroll: () => this.onScroll() },
      // The inner box sits at the bottom while the history is shorter than the screen.
      h('div', { class: 'log-inner' }, this.olderEl, this.status, this.list, this.pendingList),
    );
    this.typingEl = h('p', { class: 'typing', id: 'typing', 'aria-live': 'polite' });

    this.composer = new Composer(this.session, id, () => this.scrollToBottom());

    this.members = new MembersPanel(this.session, id, () => this.toggleMembers(false));
    this.chat = h('div', { class: 'chat' }, header, this.scroller, this.typingEl, this.composer.error, this.composer.form);
    this.composer.acceptDrops(this.chat);
    this.element = h(
      'section',
      { class: 'conversation', 'aria-labelledby': 'conversation-title', 'data-id': id },
      this.chat,
      this.members.element,
    );
  }

  focus() {
    this.composer.focus();
  }

  destroy() {
    this.composer.destroy();
    for (const off of this.disposers) off();
    this.members.destroy();
    clearInterval(this.clock);
    const { client } = this.session;
    client.call('conversation:leave', { conversation_id: this.conversationId }).catch(() => {});
  }

  subscribe() {
    const { client, store } = this.session;
    const id = this.conversationId;
    const visibility = () => this.markRead();
    document.addEventListener('visibilitychange', visibility);
    this.clock = setInterval(() => this.renderHeader(), 30_000);
    this.disposers.push(
      () => document.removeEventListener('visibilitychange', visibility),
      client.on('message:new', ({ message }) => {
        if (message.conversation_id === id) this.receive(message);
      }),
      // Again after each reconnect, once sync has brought what was missed: who types, and the
      // conversation as it is now.
      client.on('synced', () => this.join()),
      client.on('state', () => this.renderPending()),
      client.on('outbox', () => this.renderPending()),
      client.on('upload', ({ upload }) => {
        const node = this.pendingList.querySelector(`.upload[data-key="${upload.key}"]`);
        if (node) updateUpload(node, upload);
      }),
      client.on('send:failed', ({ entry, error }) => {
        if (entry.conversation_id !== id) return;
        this.composer.failed(entry.body, error);
      }),
      store.on('conversation', (changed) => {
        if (changed !== id) return;
        this.renderHeader();
        this.renderReceipts();
      }),
      store.on('typing', (changed) => changed === id && this.renderTyping()),
      store.on('presence', () => this.renderHeader()),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Loading

  /** conversation:join: the conversation, its latest page and who types (PROTOCOL.md §3). */
  async join() {
    const { client, store } = this.session;
    const id = this.conversationId;
    let answer;
    try {
      answer = await client.call('conversation:join', { conversation_id: id, limit: PAGE });
    } catch (err) {
      if (err.code === 'not_found' || err.code === 'bad_request') {
        this.status.textContent = 'This conversation does not exist, or you are not one of its members.';
        this.status.hidden = false;
      }
      return; // disconnected: 'synced' joins again
    }
    const { conversation, messages, typing } = answer;
    store.upsert(conversation);
    client.track(id, conversation.last_seq);
    client.markSeen(messages);
    const first = !this.loaded;
    this.loaded = true;
    this.status.hidden = true;
    if (first) this.hasOlder = messages.length > 0 && messages[0].seq > 1;
    this.addMessages(messages);
    for (const userId of typing) store.setTyping(id, userId, true);
    if (first) {
      this.scrollToBottom();
      this.fillScreen();
    }
    this.renderOlder();
    this.markRead();
  }

  /** Loads older pages until the history overflows the screen (so scrolling up can load more). */
  async fillScreen() {
    while (this.hasOlder && this.scroller.scrollHeight <= this.scroller.clientHeight && this.element.isConnected) {
      if (!(await this.loadOlder())) break;
    }
  }

  onScroll() {
    if (this.scroller.scrollTop < NEAR_TOP_PX) this.loadOlder();
  }

  /** One page of older messages over REST; keeps what is on screen where it was. */
  async loadOlder() {
    if (this.loadingOlder || !this.hasOlder || this.oldestSeq === null) return false;
    this.loadingOlder = true;
    this.renderOlder();
    const { api, client } = this.session;
    try {
      const page = await api.get(
        `/api/conversations/${this.conversationId}/messages?before_seq=${this.oldestSeq}&limit=${PAGE}`,
      );
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      client.markSeen(page.messages);
      this.addMessages(page.messages);
      this.hasOlder = page.has_more;
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
      return true;
    } catch {
      return false; // the button stays for another try
    } finally {
      this.loadingOlder = false;
      this.renderOlder();
    }
  }

  renderOlder() {
    this.olderEl.hidden = !this.loaded;
    if (!this.hasOlder) {
      replaceChildren(this.olderEl, h('span', { class: 'older-start' }, 'This is the beginning of the conversation.'));
      return;
    }
    this.olderButton.textContent = this.loadingOlder ? 'Loading older messages…' : 'Load older messages';
    this.olderButton.disabled = this.loadingOlder;
    if (this.olderButton.parentNode !== this.olderEl) replaceChildren(this.olderEl, this.olderButton);
  }

  // -------------------------------------------------------------------------------------------
  // Messages

  /** A live message (event, ack or sync): shown once, and read if the page is looked at. */
  receive(message) {
    const stick = this.nearBottom() || message.sender_id === this.session.me.id;
    this.addMessages([message]);
    if (stick) this.scrollToBottom();
    if (this.loaded) this.markRead();
  }

  addMessages(messages) {
    for (const message of messages) {
      if (this.messages.has(message.id)) continue;
      this.messages.set(message.id, message);
      const node = this.renderMessage(message);
      this.nodes.set(message.id, node);
      this.insertInOrder(node, message.seq);
      if (this.oldestSeq === null || message.seq < this.oldestSeq) this.oldestSeq = message.seq;
      if (message.seq > this.newestSeq) this.newestSeq = message.seq;
      if (message.client_id) this.pendingNodes.get(message.client_id)?.remove();
      if (message.kind === 'system') {
        // A removed file (PROTOCOL.md §2.10): shown removed wherever it was.
        for (const attachment of message.attachments || []) if (attachment.removed) this.markRemoved(attachment);
      } else {
        for (const attachment of message.attachments || []) this.attachmentMessages.set(attachment.id, message.id);
      }
    }
    if (messages.length) this.status.hidden = true;
  }

  insertInOrder(node, seq) {
    // Almost always the newest: walk back from the end.
    let after = this.list.lastElementChild;
    while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
    this.list.insertBefore(node, after ? after.nextSibling : this.list.firstChild);
  }

  renderMessage(message) {
    const { store, me } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    if (message.kind === 'system') {
      return h(
        'li',
        { class: 'msg msg--system', 'data-id': message.id, 'data-seq': message.seq },
        h('p', { class: 'msg-body', dir: 'auto' }, message.body),
      );
    }
    const mine = message.sender_id === me.id;
    const sender = conversation ? store.nameIn(conversation, message.sender_id) : '';
    const status = mine ? h('span', { class: 'msg-status' }) : null;
    const node = h(
      'li',
      { class: mine ? 'msg msg--mine' : 'msg', 'data-id': message.id, 'data-seq': message.seq },
      h(
        'div',
        { class: 'bubble' },
        // The name is always there for screen readers; shown only for others in groups.
        h(
          'span',
          { class: mine || conversation?.kind !== 'group' ? 'msg-sender visually-hidden' : 'msg-sender' },
          mine ? 'You' : sender,
        ),
        this.renderAttachments(message, mine),
        message.body ? h('p', { class: 'msg-body', dir: 'auto' }, message.body) : null,
        h(
          'span',
          { class: 'msg-meta' },
          h(
            'time',
            { datetime: message.created_at, title: fullTime(message.created_at) },
            timeOfDay(message.created_at),
          ),
          status,
        ),
      ),
    );
    if (status) this.renderReceipt(node, message);
    return node;
  }

  /** A message's files; a × on those the viewer may remove (their own, or any as a group's owner). */
  renderAttachments(message, mine) {
    const attachments = message.attachments || [];
    if (attachments.length === 0) return null;
    const { store, me } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    const owner = conversation?.kind === 'group' && store.member(conversation, me.id)?.role === 'owner';
    const onRemove = mine || owner ? (attachment) => this.removeAttachment(attachment) : null;
    const views = attachments.map((attachment) => attachmentView(attachment, onRemove));
    return h('div', { class: 'attachments' }, views);
  }

  /** Removes a sent file for everyone, once the person confirms. */
  async removeAttachment(attachment) {
    if (!confirm(`Remove ${attachment.filename} for everyone in this conversation?`)) return;
    try {
      await this.session.api.delete(`/api/attachments/${attachment.id}`);
      // The system message that follows marks it removed, here and on every other screen.
    } catch (err) {
      this.composer.showError(`Not removed: ${err.message}`);
    }
  }

  /** A file removed since: its message shows a placeholder instead (`removed` is the new entry). */
  markRemoved(removed) {
    const message = this.messages.get(this.attachmentMessages.get(removed.id));
    if (!message) return; // not on screen: a history page loaded later has it removed already
    message.attachments = message.attachments.map((a) => (a.id === removed.id ? removed : a));
    const node = this.nodes.get(message.id).querySelector(`.attachment[data-attachment-id="${removed.id}"]`);
    const hadFocus = node?.contains(document.activeElement);
    const placeholder = attachmentView(removed);
    node?.replaceWith(placeholder);
    if (hadFocus) this.composer.focus();
  }

  /** "Sent" / "Read" (direct) or "Read by N" (group), from the other members' read markers. */
  renderReceipt(node, message) {
    const { store, me } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    const status = node.querySelector('.msg-status');
    if (!conversation || !status) return;
    const readers = conversation.members.filter((m) => m.user_id !== me.id && m.last_read_seq >= message.seq);
    let text = 'Sent';
    if (readers.length > 0) text = conversation.kind === 'direct' ? 'Read' : `Read by ${readers.length}`;
    status.textContent = text;
    status.dataset.status = readers.length > 0 ? 'read' : 'sent';
    status.title =
      readers.length > 0 ? `Read by ${readers.map((m) => m.display_name).join(', ')}` : 'Delivered to the server';
  }

  renderReceipts() {
    for (const [id, node] of this.nodes) {
      const message = this.messages.get(id);
      if (message.sender_id === this.session.me.id && message.kind === 'text') this.renderReceipt(node, message);
    }
  }

  /** The pending sends of this conversation, under the history, until their ack. */
  renderPending() {
    const { client } = this.session;
    const entries = client.pending(this.conversationId);
    const keep = new Set();
    const waiting = client.state === 'connected' ? 'Sending…' : 'Waiting for connection…';
    for (const entry of entries) {
      keep.add(entry.client_id);
      let node = this.pendingNodes.get(entry.client_id);
      if (!node) {
        node = h(
          'li',
          { class: 'msg msg--mine msg--pending', 'data-client-id': entry.client_id },
          h(
            'div',
            { class: 'bubble' },
            entry.files.length > 0 ? h('ul', { class: 'uploads' }, entry.files.map((u) => uploadView(u))) : null,
            entry.body ? h('p', { class: 'msg-body', dir: 'auto' }, entry.body) : null,
            h('span', { class: 'msg-meta' }, h('span', { class: 'msg-status', 'data-status': 'pending' })),
          ),
        );
        this.pendingNodes.set(entry.client_id, node);
      }
      node.querySelector('.msg-status').textContent = waiting;
      if (node.parentNode !== this.pendingList) {
        const stick = this.nearBottom();
        this.pendingList.appendChild(node);
        if (stick) this.scrollToBottom();
      }
    }
    for (const [clientId, node] of this.pendingNodes) {
      if (!keep.has(clientId)) {
        node.remove();
        this.pendingNodes.delete(clientId);
      }
    }
  }

  /** Moves the read marker to the newest message on screen, when the page is looked at. */
  markRead() {
    const { client, store, me } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    if (!conversation || document.visibilityState !== 'visible' || client.state !== 'connected') return;
    const mine = store.member(conversation, me.id);
    const seq = this.newestSeq;
    if (!seq || seq <= this.lastMarked || (mine && mine.last_read_seq >= seq && conversation.unread_count === 0))
      return;
    this.lastMarked = seq;
    client
      .call('read:mark', { conversation_id: this.conversationId, seq })
      .then((state) => store.unread({ conversation_id: this.conversationId, ...state }))
      .catch(() => {
        this.lastMarked = 0; // try again on the next occasion
      });
  }

  // -------------------------------------------------------------------------------------------
  // Header, typing, members

  renderHeader() {
    const { store } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    if (!conversation) return;
    const title = store.title(conversation);
    this.titleEl.textContent = title;
    this.composer.setRecipient(title);
    this.composer.setReadOnly(readOnlyReason(conversation, store.me.id));
    const peer = store.peer(conversation);
    if (peer) {
      const presence = store.presence.get(peer.user_id);
      replaceChildren(this.avatarSlot, avatar(title, presence ? presence.online : false));
      this.subtitleEl.textContent = presenceText(presence) || `@${peer.username}`;
      this.subtitleEl.dataset.online = presence?.online ? 'true' : 'false';
    } else {
      replaceChildren(this.avatarSlot, avatar(title));
      const count = conversation.members.length;
      this.subtitleEl.textContent = `${count} member${count === 1 ? '' : 's'}`;
    }
    this.membersButton.hidden = conversation.kind !== 'group';
  }

  renderTyping() {
    const { store } = this.session;
    const conversation = store.conversations.get(this.conversationId);
    const names = store
      .typists(this.conversationId)
      .map((id) => (conversation ? store.nameIn(conversation, id) : 'Someone'));
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    this.typingEl.textContent = text;
  }

  toggleMembers(open = this.membersButton.getAttribute('aria-expanded') !== 'true') {
    this.membersButton.setAttribute('aria-expanded', String(open));
    this.element.classList.toggle('conversation--members', open);
    this.members.setOpen(open);
    if (!open) this.membersButton.focus();
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

/** Why the user cannot write here, if they cannot: the conversation is archived, or they observe it. */
function readOnlyReason(conversation, me) {
  if (conversation.archived_at) return 'This conversation is archived: it can be read, not written to.';
  if ((conversation.observers || []).some((o) => o.user_id === me)) return 'You read this conversation as an observer.';
  return null;
}
