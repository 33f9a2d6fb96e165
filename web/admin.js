// admin.js: the live actors of the node that answers (PROTOCOL.md §5), for admin tokens,
// refreshed every few seconds while the page is open.

import { h, pageHead, replaceChildren, ago, fullTime } from './dom.js';

const REFRESH_MS = 3_000;

export class AdminView {
  constructor(session) {
    this.session = session;
    this.stopped = false;
    this.summary = h('dl', { class: 'stats', id: 'admin-summary' });
    this.updated = h('p', { class: 'hint', role: 'status', id: 'admin-updated' }, 'Loading…');
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.rows = h('tbody', { id: 'admin-actors' });
    this.table = h(
      'table',
      { class: 'actors' },
      h('caption', {}, 'Conversation actors'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          [
            'Conversation',
            'Members',
            'Sessions',
            'Messages handled',
            'Mailbox',
            'Restarts',
            'Typing',
            'Last activity',
          ].map((title) => h('th', { scope: 'col' }, title)),
        ),
      ),
      this.rows,
    );
    this.heading = h('h2', { id: 'admin-heading', tabindex: '-1' }, 'Live actors');
    this.element = h(
      'section',
      { class: 'page page--wide', 'aria-labelledby': 'admin-heading' },
      pageHead(this.heading),
      this.updated,
      this.error,
      this.summary,
      h('div', { class: 'table-scroll' }, this.table),
    );
    this.refresh();
  }

  focus() {
    this.heading.focus();
  }

  destroy() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  async refresh() {
    try {
      const actors = await this.session.api.get('/api/admin/actors');
      if (this.stopped) return;
      this.error.textContent = '';
      this.render(actors);
      this.updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      if (this.stopped) return;
      this.error.textContent =
        err.status === 403 ? 'This page needs an admin account.' : `Could not load the actors: ${err.message}`;
    }
    if (!this.stopped) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  render(actors) {
    const { store } = this.session;
    const stat = (label, value) => h('div', { class: 'stat' }, h('dt', {}, label), h('dd', {}, String(value)));
    replaceChildren(
      this.summary,
      stat('Node', actors.node_id),
      stat('Started', ago(actors.started_at).replace(/^on /, '')),
      // In a cluster: whether this node reaches Redis ('off' on a node alone).
      stat('Broker', actors.broker ? actors.broker.state : 'off'),
      stat('Sessions', actors.sessions.count),
      stat('Users connected', actors.sessions.users),
      stat('Users online', actors.presence.online_users),
      stat('Conversation actors', actors.conversations.length),
    );
    const conversations = [...actors.conversations].sort((a, b) =>
      b.last_activity_at.localeCompare(a.last_activity_at),
    );
    if (conversations.length === 0) {
      replaceChildren(
        this.rows,
        h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No conversation actor is running.')),
      );
      return;
    }
    replaceChildren(
      this.rows,
      conversations.map((c) => {
        const known = store.conversations.get(c.conversation_id);
        return h(
          'tr',
          { 'data-id': c.conversation_id },
          h(
            'th',
            { scope: 'row' },
            known ? h('a', { href: `#/c/${c.conversation_id}` }, store.title(known)) : null,
            h('code', { class: 'id', title: c.conversation_id }, c.conversation_id.slice(0, 8)),
          ),
          h('td', {}, String(c.members)),
          h('td', {}, String(c.sessions)),
          h('td', {}, String(c.messages_handled)),
          h('td', {}, String(c.mailbox)),
          h('td', {}, String(c.restarts)),
          h('td', {}, String(c.typing.length)),
          h('td', { title: fullTime(c.last_activity_at) }, ago(c.last_activity_at)),
        );
      }),
    );
  }
}
