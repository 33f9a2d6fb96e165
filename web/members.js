// members.js: a group's members panel: who is in it and their role; the owner adds and removes
// people, anyone may leave (PROTOCOL.md §2, the members endpoints).

import { h, replaceChildren, avatar, debounce, presenceText } from './dom.js';

export class MembersPanel {
  constructor(session, conversationId, onClose) {
    this.session = session;
    this.conversationId = conversationId;
    this.confirmingLeave = false;
    this.list = h('ul', { class: 'member-list', id: 'member-list' });
    this.heading = h('h3', { id: 'members-heading' }, 'Members');
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.search = h('input', {
      type: 'search',
      id: 'add-member-search',
      placeholder: 'Name or username',
      autocomplete: 'off',
      oninput: debounce(() => this.findPeople(), 200),
    });
    this.results = h('ul', {
      class: 'people-list people-list--compact',
      id: 'add-member-results',
      'aria-live': 'polite',
    });
    this.addSection = h(
      'div',
      { class: 'add-member' },
      h('label', { for: 'add-member-search' }, 'Add people'),
      this.search,
      this.results,
    );
    this.leaveSection = h('div', { class: 'leave' });
    this.element = h(
      'aside',
      { class: 'members', id: 'members-panel', 'aria-labelledby': 'members-heading', hidden: true },
      h(
        'div',
        { class: 'panel-head' },
        this.heading,
        h('button', { type: 'button', class: 'button button--small', onclick: onClose }, 'Close'),
      ),
      this.list,
      this.addSection,
      this.error,
      this.leaveSection,
    );
    const { store } = session;
    this.disposers = [
      store.on('conversation', (id) => id === conversationId && this.render()),
      store.on('presence', () => this.render()),
    ];
    this.render();
  }

  destroy() {
    for (const off of this.disposers) off();
  }

  setOpen(open) {
    this.element.hidden = !open;
    if (open) {
      this.render();
      this.heading.setAttribute('tabindex', '-1');
      this.heading.focus();
    }
  }

  conversation() {
    return this.session.store.conversations.get(this.conversationId);
  }

  isOwner(conversation) {
    return this.session.store.member(conversation, this.session.me.id)?.role === 'owner';
  }

  render() {
    const conversation = this.conversation();
    if (!conversation || conversation.kind !== 'group') return;
    const { store, me } = this.session;
    const owner = this.isOwner(conversation);
    this.heading.textContent = `Members (${conversation.members.length})`;
    replaceChildren(
      this.list,
      conversation.members.map((m) => {
        const presence = store.presence.get(m.user_id);
        const you = m.user_id === me.id;
        return h(
          'li',
          { class: 'member', 'data-user-id': m.user_id },
          avatar(m.display_name, you ? true : presence ? presence.online : false),
          h(
            'span',
            { class: 'member-text' },
            h('span', { class: 'member-name' }, m.display_name, you ? ' (you)' : ''),
            h(
              'span',
              { class: 'member-sub' },
              `@${m.username}`,
              presence && !you ? ` · ${presenceText(presence)}` : '',
            ),
          ),
          m.role === 'owner' ? h('span', { class: 'role' }, 'owner') : null,
          owner && !you
            ? h(
                'button',
                {
                  type: 'button',
                  class: 'button button--small button--danger',
                  'aria-label': `Remove ${m.display_name}`,
                  onclick: () => this.remove(m),
                },
                'Remove',
              )
            : null,
        );
      }),
    );
    this.addSection.hidden = !owner;
    this.renderLeave(conversation);
  }

  renderLeave(conversation) {
    if (!this.confirmingLeave) {
      replaceChildren(
        this.leaveSection,
        h(
          'button',
          {
            type: 'button',
            class: 'button button--danger',
            id: 'leave-group',
            onclick: () => {
              this.confirmingLeave = true;
              this.renderLeave(conversation);
              this.leaveSection.querySelector('#confirm-leave').focus();
            },
          },
          'Leave group',
        ),
      );
      return;
    }
    replaceChildren(
      this.leaveSection,
      h('p', {}, `Leave “${conversation.title || 'this group'}”? You will no longer get its messages.`),
      h(
        'button',
        { type: 'button', class: 'button button--danger', id: 'confirm-leave', onclick: () => this.leave() },
        'Leave',
      ),
      ' ',
      h(
        'button',
        {
          type: 'button',
          class: 'button',
          onclick: () => {
            this.confirmingLeave = false;
            this.renderLeave(conversation);
          },
        },
        'Cancel',
      ),
    );
  }

  async findPeople() {
    const conversation = this.conversation();
    if (!conversation) return;
    const q = this.search.value.trim();
    if (!q) {
      replaceChildren(this.results);
      return;
    }
    try {
      const { users } = await this.session.api.get(`/api/users?q=${encodeURIComponent(q)}&limit=20`);
      const members = new Set(conversation.members.map((m) => m.user_id));
      const candidates = users.filter((u) => !members.has(u.id));
      replaceChildren(
        this.results,
        candidates.length === 0
          ? h('li', { class: 'empty' }, 'Nobody else matches.')
          : candidates.map((user) =>
              h(
                'li',
                { class: 'person' },
                avatar(user.display_name),
                h(
                  'span',
                  { class: 'person-text' },
                  h('span', { class: 'person-name' }, user.display_name),
                  h('span', { class: 'person-sub' }, `@${user.username}`),
                ),
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'button button--small',
                    'aria-label': `Add ${user.display_name}`,
                    onclick: () => this.add(user),
                  },
                  'Add',
                ),
              ),
            ),
      );
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  async add(user) {
    this.error.textContent = '';
    try {
      const conversation = await this.session.api.post(`/api/conversations/${this.conversationId}/members`, {
        user_id: user.id,
      });
      this.session.store.upsert(conversation);
      this.search.value = '';
      replaceChildren(this.results);
      this.search.focus();
    } catch (err) {
      this.error.textContent = `Could not add ${user.display_name}: ${err.message}`;
    }
  }

  async remove(member) {
    this.error.textContent = '';
    try {
      await this.session.api.delete(`/api/conversations/${this.conversationId}/members/${member.user_id}`);
      const conversation = await this.session.api.get(`/api/conversations/${this.conversationId}`);
      this.session.store.upsert(conversation);
      this.heading.focus();
    } catch (err) {
      this.error.textContent = `Could not remove ${member.display_name}: ${err.message}`;
    }
  }

  async leave() {
    const { api, client, store, me } = this.session;
    this.error.textContent = '';
    try {
      await api.delete(`/api/conversations/${this.conversationId}/members/${me.id}`);
      client.untrack(this.conversationId);
      store.remove(this.conversationId);
      location.hash = '#/';
    } catch (err) {
      this.error.textContent = `Could not leave: ${err.message}`;
    }
  }
}
