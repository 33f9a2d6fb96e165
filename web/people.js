// people.js: the directory (search, and "Contact" to open the direct conversation) and the form
// for a new group.

import { h, pageHead, replaceChildren, avatar, debounce, presenceText } from './dom.js';

/** Searches the directory as `q` changes; calls `show(users)` with everyone but the caller. */
function directorySearch(session, show, onError) {
  let latest = 0;
  return async (q) => {
    const mine = ++latest;
    try {
      const { users } = await session.api.get(`/api/users?q=${encodeURIComponent(q)}&limit=50`);
      if (mine === latest) show(users.filter((u) => u.id !== session.me.id));
    } catch (err) {
      onError(err);
    }
  };
}

function personRow(user, presence, action) {
  return h(
    'li',
    { class: 'person', 'data-username': user.username },
    avatar(user.display_name, presence ? presence.online : undefined),
    h(
      'span',
      { class: 'person-text' },
      h('span', { class: 'person-name' }, user.display_name),
      h('span', { class: 'person-sub' }, `@${user.username}`, presence ? ` · ${presenceText(presence)}` : ''),
    ),
    action,
  );
}

export class DirectoryView {
  constructor(session) {
    this.session = session;
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.results = h('ul', { class: 'people-list', id: 'people-results', 'aria-labelledby': 'people-heading' });
    this.count = h('p', { class: 'hint', role: 'status', id: 'people-count' });
    this.search = h('input', {
      type: 'search',
      id: 'people-search',
      placeholder: 'Name or username',
      autocomplete: 'off',
      oninput: debounce(() => this.run(this.search.value.trim()), 200),
    });
    this.run = directorySearch(
      session,
      (users) => {
        this.show(users);
        this.presenceOf(users);
      },
      (err) => (this.error.textContent = err.message),
    );
    this.element = h(
      'section',
      { class: 'page', 'aria-labelledby': 'people-heading' },
      pageHead(h('h2', { id: 'people-heading' }, 'People')),
      h(
        'form',
        { class: 'search', role: 'search', onsubmit: (e) => (e.preventDefault(), this.run(this.search.value.trim())) },
        h('label', { for: 'people-search' }, 'Search people'),
        this.search,
      ),
      this.count,
      this.error,
      this.results,
    );
    this.run('');
  }

  focus() {
    this.search.focus();
  }

  destroy() {}

  /** Asks who of them is online, then shows the dots. */
  async presenceOf(users) {
    const { client, store } = this.session;
    const unknown = users.filter((u) => !store.presence.has(u.id)).map((u) => u.id);
    if (unknown.length === 0) return;
    try {
      const { presence } = await client.call('presence:query', { user_ids: unknown.slice(0, 100) });
      for (const p of presence) store.setPresence(p);
      if (this.element.isConnected) this.show(users);
    } catch {
      // Not connected: the list shows without dots.
    }
  }

  show(users) {
    const { store } = this.session;
    this.count.textContent =
      users.length === 0 ? 'Nobody matches.' : `${users.length} ${users.length === 1 ? 'person' : 'people'}`;
    replaceChildren(
      this.results,
      users.map((user) =>
        personRow(
          user,
          store.presence.get(user.id),
          h(
            'button',
            {
              type: 'button',
              class: 'button button--small button--primary',
              'aria-label': `Contact ${user.display_name}`,
              onclick: (e) => this.contact(user, e.currentTarget),
            },
            'Contact',
          ),
        ),
      ),
    );
  }

  /** Gets or creates the direct conversation (PROTOCOL.md §2) and opens it. */
  async contact(user, button) {
    const { api, client, store } = this.session;
    button.disabled = true;
    this.error.textContent = '';
    try {
      const conversation = await api.post('/api/conversations', { kind: 'direct', user_id: user.id });
      store.upsert(conversation);
      client.track(conversation.id, conversation.last_seq);
      location.hash = `#/c/${conversation.id}`;
    } catch (err) {
      this.error.textContent = `Could not contact ${user.display_name}: ${err.message}`;
      button.disabled = false;
    }
  }
}

export class NewGroupView {
  constructor(session) {
    this.session = session;
    this.chosen = new Map(); // user id -> User
    this.error = h('p', { class: 'form-error', role: 'alert', id: 'group-error' });
    this.title = h('input', { id: 'group-title', required: true, maxlength: 100, autocomplete: 'off' });
    this.search = h('input', {
      type: 'search',
      id: 'group-search',
      placeholder: 'Name or username',
      autocomplete: 'off',
      oninput: debounce(() => this.run(this.search.value.trim()), 200),
    });
    this.results = h('ul', {
      class: 'people-list people-list--compact',
      id: 'group-results',
      'aria-label': 'People to add',
    });
    this.chosenList = h('ul', { class: 'chips', id: 'group-members', 'aria-label': 'Members of the new group' });
    this.run = directorySearch(
      session,
      (users) => this.show(users),
      (err) => (this.error.textContent = err.message),
    );
    this.submit = h('button', { type: 'submit', class: 'button button--primary', id: 'create-group' }, 'Create group');
    this.element = h(
      'section',
      { class: 'page', 'aria-labelledby': 'group-heading' },
      pageHead(h('h2', { id: 'group-heading' }, 'New group')),
      h(
        'form',
        { class: 'group-form', onsubmit: (e) => this.create(e), novalidate: true },
        h('div', { class: 'field' }, h('label', { for: 'group-title' }, 'Group name'), this.title),
        h('div', { class: 'field' }, h('span', { class: 'label', id: 'chosen-label' }, 'Members'), this.chosenList),
        h('div', { class: 'field' }, h('label', { for: 'group-search' }, 'Add people'), this.search, this.results),
        this.error,
        this.submit,
      ),
    );
    this.renderChosen();
    this.run('');
  }

  focus() {
    this.title.focus();
  }

  destroy() {}

  show(users) {
    replaceChildren(
      this.results,
      users.map((user) => {
        const chosen = this.chosen.has(user.id);
        return personRow(
          user,
          null,
          h(
            'button',
            {
              type: 'button',
              class: 'button button--small',
              'aria-pressed': String(chosen),
              'aria-label': `${chosen ? 'Remove' : 'Add'} ${user.display_name}`,
              onclick: () => this.toggle(user),
            },
            chosen ? 'Added' : 'Add',
          ),
        );
      }),
    );
  }

  toggle(user) {
    if (this.chosen.has(user.id)) this.chosen.delete(user.id);
    else this.chosen.set(user.id, user);
    this.renderChosen();
    // Re-render the results, keeping the focus on the same person's button.
    const focusedUser = user.username;
    this.run(this.search.value.trim()).then(() => {
      this.results.querySelector(`[data-username="${CSS.escape(focusedUser)}"] button`)?.focus();
    });
  }

  renderChosen() {
    const users = [...this.chosen.values()];
    replaceChildren(
      this.chosenList,
      users.length === 0
        ? h('li', { class: 'hint' }, 'Only you so far: add people below.')
        : users.map((user) =>
            h(
              'li',
              { class: 'chip' },
              user.display_name,
              h(
                'button',
                {
                  type: 'button',
                  class: 'chip-remove',
                  'aria-label': `Remove ${user.display_name}`,
                  onclick: () => this.toggle(user),
                },
                '×',
              ),
            ),
          ),
    );
  }

  async create(event) {
    event.preventDefault();
    const title = this.title.value.trim();
    if (!title) {
      this.error.textContent = 'Give the group a name.';
      this.title.focus();
      return;
    }
    const { api, client, store } = this.session;
    this.submit.disabled = true;
    this.error.textContent = '';
    try {
      const conversation = await api.post('/api/conversations', {
        kind: 'group',
        title,
        member_ids: [...this.chosen.keys()],
      });
      store.upsert(conversation);
      client.track(conversation.id, conversation.last_seq);
      location.hash = `#/c/${conversation.id}`;
    } catch (err) {
      this.error.textContent = `Could not create the group: ${err.message}`;
      this.submit.disabled = false;
    }
  }
}
