// composer.js: the message composer of a conversation: the text box (Enter sends, Shift+Enter is
// a new line), typing:start / typing:stop as the person types, and the "Not sent" error line.
// Kept apart from the conversation view so that what a message carries can grow here alone.

import { h } from './dom.js';

const TYPING_REPEAT_MS = 3_000; // typing:start again while typing (the server forgets after 5 s)
const MAX_HEIGHT_PX = 160;

export class Composer {
  /** `onSent` runs after a message is handed to the client (the view scrolls to the bottom). */
  constructor(session, conversationId, onSent) {
    this.session = session;
    this.conversationId = conversationId;
    this.onSent = onSent;
    this.typingSentAt = 0;
    this.input = h('textarea', {
      id: 'composer-input',
      rows: 1,
      maxlength: 4000,
      placeholder: 'Write a message…',
      'aria-describedby': 'composer-hint',
      onkeydown: (e) => this.onKeyDown(e),
      oninput: () => this.onInput(),
      onblur: () => this.stopTyping(),
    });
    this.label = h('label', { for: 'composer-input', class: 'visually-hidden' }, 'Message');
    this.error = h('p', { class: 'form-error', role: 'alert', id: 'send-error' });
    this.form = h(
      'form',
      { class: 'composer', id: 'composer', onsubmit: (e) => this.submit(e) },
      this.label,
      this.input,
      h('span', { id: 'composer-hint', class: 'visually-hidden' }, 'Enter sends, Shift+Enter starts a new line.'),
      h('button', { type: 'submit', class: 'button button--primary', id: 'send-button' }, 'Send'),
    );
  }

  /** Names the person or group the message goes to, for screen readers. */
  setRecipient(title) {
    this.label.textContent = `Message to ${title}`;
  }

  focus() {
    this.input.focus();
  }

  /** A send the server refused: say why, and give the text back if the box is empty. */
  failed(body, error) {
    this.error.textContent = `Not sent: ${error.message}`;
    if (!this.input.value) this.input.value = body;
  }

  onKeyDown(event) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is neither.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit(event);
    }
  }

  onInput() {
    this.error.textContent = '';
    this.autoGrow();
    if (!this.input.value.trim()) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_REPEAT_MS) {
      this.typingSentAt = now;
      this.session.client.call('typing:start', { conversation_id: this.conversationId }).catch(() => {});
    }
  }

  stopTyping() {
    if (!this.typingSentAt) return;
    this.typingSentAt = 0;
    this.session.client.call('typing:stop', { conversation_id: this.conversationId }).catch(() => {});
  }

  autoGrow() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }

  submit(event) {
    event.preventDefault();
    const body = this.input.value;
    if (!body.trim()) return;
    this.error.textContent = '';
    this.typingSentAt = 0; // a sent message ends typing on the server (PROTOCOL.md §3.8)
    this.session.client.send(this.conversationId, body);
    this.input.value = '';
    this.autoGrow();
    this.onSent();
    this.input.focus();
  }
}
