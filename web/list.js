// list.js: the conversation list: latest activity first, with the last message (its text, or
// "Photo" or a file's name), its time, the unread count and (for direct conversations) the other
// person's presence; updated live.

import { h, replaceChildren, avatar, shortTime, fullTime, srOnly, filesSummary } from './dom.js';

export class ConversationList {
  constructor(session) {
    this.session = session;
    this.selected = null;
    this.items = new Map(); // conversation id -> <li>
    this.list = h('ul', { class: 'conv-list', id: 'conversation-list', 'aria-labelledby': 'conversations-heading' });
    this.empty = h(
      'p',
      { class: 'empty', hidden: true },
      'No conversations yet. ',
      h('a', { href: '#/people' }, 'Find people'),
      ' to start one.',
    );
    this.element = h(
      'div',
      { class: 'conv-panel' },
      h(
        'div',
        { class: 'panel-head' },
        h('h2', { id: 'conversations-heading' }, 'Chats'),
        h('a', { class: 'button button--small', href: '#/new-group' }, 'New group'),
      ),
      this.list,
      this.empty,
    );
    const { store } = session;
    this.unsubscribe = [store.on('conversations', () => this.render()), store.on('presence', () => this.render())];
    // "5 min ago" and "Mon" go stale: refresh the times now and then.
    this.timer = setInterval(() => this.render(), 60_000);
    this.render();
  }

  destroy() {
    for (const off of this.unsubscribe) off();
    clearInterval(this.timer);
  }

  select(conversationId) {
    this.selected = conversationId;
    this.render();
  }

  render() {
    const { store } = this.session;
    const conversations = store.sorted();
    this.empty.hidden = !store.loaded || conversations.length > 0;
    const keep = new Set();
    let previous = null;
    for (const conversation of conversations) {
      keep.add(conversation.id);
      let item = this.items.get(conversation.id);
      if (!item) {
        item = h('li', { class: 'conv-item', 'data-id': conversation.id });
        this.items.set(conversation.id, item);
      }
      this.fill(item, conversation);
      // Move only what is out of place, so a focused link keeps its focus when nothing moved.
      const expectedNext = previous ? previous.nextSibling : this.list.firstChild;
      if (expectedNext !== item) this.list.insertBefore(item, expectedNext);
      previous = item;
    }
    for (const [id, item] of this.items) {
      if (!keep.has(id)) {
        item.remove();
        this.items.delete(id);
      }
    }
  }

  fill(item, conversation) {
    const { store } = this.session;
    const title = store.title(conversation);
    const peer = store.peer(conversation);
    const presence = peer ? store.presence.get(peer.user_id) : null;
    const last = conversation.last_message;
    let preview = 'No messages yet';
    if (last) {
      preview = senderPrefix(store, conversation, last) + previewText(last);
    }
    const unread = conversation.unread_count;
    const stamp = last ? last.created_at : conversation.updated_at;
    const link = h(
      'a',
      {
        class: 'conv-link',
        href: `#/c/${conversation.id}`,
        'aria-current': this.selected === conversation.id ? 'page' : false,
      },
      avatar(title, presence ? presence.online : peer ? false : undefined),
      h(
        'span',
        { class: 'conv-text' },
        h(
          'span',
          { class: 'conv-top' },
          h('span', { class: 'conv-title' }, title),
          presence?.online ? srOnly(' (online)') : null,
          h('time', { class: 'conv-time', datetime: stamp, title: fullTime(stamp) }, shortTime(stamp)),
        ),
        h(
          'span',
          { class: 'conv-bottom' },
          h('span', { class: last ? 'conv-preview' : 'conv-preview conv-preview--empty' }, preview),
          unread > 0 ? h('span', { class: 'badge' }, String(unread), srOnly(' unread')) : null,
        ),
      ),
    );
    item.classList.toggle('conv-item--unread', unread > 0);
    const hadFocus = item.contains(document.activeElement);
    replaceChildren(item, link);
    if (hadFocus) link.focus();
  }
}

/** The message's text on one line; with files, what they are first: "Photo · Look at this". */
function previewText(message) {
  const text = message.body.replace(/\s+/g, ' ');
  const files = message.kind === 'system' ? [] : message.attachments || [];
  if (files.length === 0) return text;
  const summary = filesSummary(files);
  return text.trim() ? `${summary} · ${text.trim()}` : summary;
}

/** "You: " for one's own messages, "Name: " in groups, nothing for system messages. */
function senderPrefix(store, conversation, message) {
  if (message.kind === 'system') return '';
  if (message.sender_id === store.me.id) return 'You: ';
  return conversation.kind === 'group' ? `${store.nameIn(conversation, message.sender_id)}: ` : '';
}
