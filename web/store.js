// store.js: what the page knows (the signed-in user, the conversations, presence, who types),
// kept up to date from the server's events. Views read it and subscribe to its topics:
//   'conversations'   the list or any conversation in it changed (preview, unread, order)
//   'conversation'    (id) one conversation changed: members, read markers, title
//   'unread'          the total unread count changed
//   'presence'        (user_id) someone's presence changed
//   'typing'          (conversation_id) who types there changed

const TYPING_FALLBACK_MS = 8_000; // in case a typing:updated {typing: false} is ever missed

export class Store {
  constructor(me) {
    this.me = me;
    this.conversations = new Map(); // id -> Conversation (PROTOCOL.md §2)
    this.totalUnread = 0;
    this.presence = new Map(); // user id -> {online, last_seen_at}
    this.typing = new Map(); // conversation id -> Map(user id -> fallback timer)
    this.loaded = false;
    this._listeners = new Map();
  }

  on(topic, fn) {
    if (!this._listeners.has(topic)) this._listeners.set(topic, new Set());
    this._listeners.get(topic).add(fn);
    return () => this._listeners.get(topic)?.delete(fn);
  }

  emit(topic, detail) {
    for (const fn of this._listeners.get(topic) || []) fn(detail);
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /** Conversations by latest activity first. */
  sorted() {
    return [...this.conversations.values()].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  }

  /** The other member of a direct conversation. */
  peer(conversation) {
    if (conversation.kind !== 'direct') return null;
    return conversation.members.find((m) => m.user_id !== this.me.id) || conversation.members[0] || null;
  }

  /** What to call a conversation: the group's title, or the other person's name. */
  title(conversation) {
    if (conversation.kind === 'group') return conversation.title || 'Untitled group';
    const peer = this.peer(conversation);
    return peer ? peer.display_name : 'Direct conversation';
  }

  member(conversation, userId) {
    return conversation.members.find((m) => m.user_id === userId) || null;
  }

  /** A member's display name in a conversation, or a fallback. */
  nameIn(conversation, userId) {
    if (userId === this.me.id) return 'You';
    return this.member(conversation, userId)?.display_name || 'Someone';
  }

  /** Everyone the user shares a conversation with (whose presence to show). */
  contacts() {
    const ids = new Set();
    for (const c of this.conversations.values()) for (const m of c.members) ids.add(m.user_id);
    ids.delete(this.me.id);
    return [...ids];
  }

  typists(conversationId) {
    return [...(this.typing.get(conversationId)?.keys() || [])];
  }

  // -------------------------------------------------------------------------------------------
  // Changes

  setConversations(list, totalUnread) {
    this.conversations = new Map(list.map((c) => [c.id, c]));
    this.loaded = true;
    this.setTotalUnread(totalUnread);
    this.emit('conversations');
  }

  /** A conversation as the server sent it (created, changed, fetched). */
  upsert(conversation) {
    const known = this.conversations.get(conversation.id);
    // An event may carry an older snapshot than what messages have told us since.
    if (known && known.last_seq > conversation.last_seq) {
      conversation = { ...conversation, last_seq: known.last_seq, last_message: known.last_message };
    }
    const everyone = [...conversation.members, ...(conversation.observers || [])];
    if (!everyone.some((m) => m.user_id === this.me.id)) {
      this.remove(conversation.id); // removed from it, or left (PROTOCOL.md §2.5)
      return;
    }
    this.conversations.set(conversation.id, conversation);
    this.emit('conversation', conversation.id);
    this.emit('conversations');
  }

  /** Someone's display name or avatar changed (`user:updated`): every conversation shows it. */
  userUpdated(user) {
    for (const conversation of this.conversations.values()) {
      const people = [...conversation.members, ...(conversation.observers || [])];
      for (const person of people.filter((p) => p.user_id === user.id)) {
        person.display_name = user.display_name;
        person.avatar_url = user.avatar_url;
        this.emit('conversation', conversation.id);
      }
    }
    if (user.id === this.me.id) this.me = { ...this.me, ...user };
    this.emit('conversations');
  }

  remove(id) {
    if (!this.conversations.delete(id)) return;
    this.typing.delete(id);
    this.emit('conversation', id);
    this.emit('conversations');
  }

  /** A new message: the preview, the order, and the sender's read marker move with it. */
  message(message) {
    const conversation = this.conversations.get(message.conversation_id);
    if (!conversation) return false;
    if (message.seq > conversation.last_seq) {
      conversation.last_seq = message.seq;
      conversation.last_message = message;
      if (message.created_at > conversation.updated_at) conversation.updated_at = message.created_at;
    }
    const sender = this.member(conversation, message.sender_id);
    if (sender && sender.last_read_seq < message.seq) sender.last_read_seq = message.seq;
    this.stopTyping(message.conversation_id, message.sender_id);
    this.emit('conversation', conversation.id);
    this.emit('conversations');
    return true;
  }

  unread({ conversation_id, unread_count, total_unread }) {
    const conversation = this.conversations.get(conversation_id);
    if (conversation && conversation.unread_count !== unread_count) {
      conversation.unread_count = unread_count;
      this.emit('conversations');
    }
    this.setTotalUnread(total_unread);
  }

  setTotalUnread(total) {
    if (total === this.totalUnread) return;
    this.totalUnread = total;
    this.emit('unread');
  }

  read({ conversation_id, user_id, last_read_seq }) {
    const conversation = this.conversations.get(conversation_id);
    const member = conversation && this.member(conversation, user_id);
    if (!member) return;
    member.last_read_seq = last_read_seq; // may move back: "mark as unread"
    this.emit('conversation', conversation_id);
  }

  setPresence({ user_id, online, last_seen_at }) {
    this.presence.set(user_id, { online, last_seen_at });
    this.emit('presence', user_id);
  }

  setTyping(conversationId, userId, typing) {
    if (userId === this.me.id) return;
    if (!typing) {
      this.stopTyping(conversationId, userId);
      return;
    }
    if (!this.typing.has(conversationId)) this.typing.set(conversationId, new Map());
    const typists = this.typing.get(conversationId);
    clearTimeout(typists.get(userId));
    typists.set(
      userId,
      setTimeout(() => this.stopTyping(conversationId, userId), TYPING_FALLBACK_MS),
    );
    this.emit('typing', conversationId);
  }

  stopTyping(conversationId, userId) {
    const typists = this.typing.get(conversationId);
    if (!typists || !typists.has(userId)) return;
    clearTimeout(typists.get(userId));
    typists.delete(userId);
    this.emit('typing', conversationId);
  }
}
