// composer.js: the message composer of a conversation: the text box (Enter sends, Shift+Enter is
// a new line), the files that go with the message (picked with the attach button, dropped on the
// conversation or pasted; each uploads at once, with its progress, and can be removed before
// sending), typing:start / typing:stop as the person types, and the "Not sent" error line.
// Kept apart from the conversation view so that what a message carries can grow here alone.

import { h, replaceChildren, uploadView, updateUpload } from './dom.js';

const TYPING_REPEAT_MS = 3_000; // typing:start again while typing (the server forgets after 5 s)
const MAX_HEIGHT_PX = 160;
// Files per message: the server's default (PARLEY_MAX_ATTACHMENTS_PER_MESSAGE), which it does
// not announce; a server set lower refuses the send and says so.
const MAX_FILES = 5;

export class Composer {
  /** `onSent` runs after a message is handed to the client (the view scrolls to the bottom). */
  constructor(session, conversationId, onSent) {
    this.session = session;
    this.conversationId = conversationId;
    this.onSent = onSent;
    this.typingSentAt = 0;
    this.files = []; // uploads for the next message, in the order they were picked
    this.fileNodes = new Map(); // upload key -> <li>
    this.input = h('textarea', {
      id: 'composer-input',
      rows: 1,
      maxlength: 4000,
      placeholder: 'Write a message…',
      'aria-describedby': 'composer-hint',
      onkeydown: (e) => this.onKeyDown(e),
      oninput: () => this.onInput(),
      onblur: () => this.stopTyping(),
      onpaste: (e) => this.onPaste(e),
    });
    this.label = h('label', { for: 'composer-input', class: 'visually-hidden' }, 'Message');
    this.error = h('p', { class: 'form-error', role: 'alert', id: 'send-error' });
    this.note = h('p', { class: 'composer-note', id: 'composer-note', role: 'status', hidden: true });
    // The button opens the browser's file picker; the input itself stays out of the tab order.
    this.fileInput = h('input', {
      type: 'file',
      multiple: true,
      id: 'attach-input',
      class: 'visually-hidden',
      tabindex: '-1',
      'aria-hidden': 'true',
      onchange: () => {
        this.addFiles(this.fileInput.files);
        this.fileInput.value = ''; // the same file can be picked again
      },
    });
    this.fileList = h('ul', { class: 'uploads', id: 'composer-files', 'aria-label': 'Files to send', hidden: true });
    this.form = h(
      'form',
      { class: 'composer', id: 'composer', onsubmit: (e) => this.submit(e) },
      this.note,
      this.fileList,
      this.label,
      this.fileInput,
      h(
        'button',
        {
          type: 'button',
          class: 'button button--quiet attach-button',
          id: 'attach-button',
          'aria-label': 'Attach files',
          title: 'Attach files (or drop or paste them here)',
          onclick: () => this.fileInput.click(),
        },
        clipIcon(),
      ),
      this.input,
      h(
        'span',
        { id: 'composer-hint', class: 'visually-hidden' },
        'Enter sends, Shift+Enter starts a new line. Files can be attached, dropped or pasted.',
      ),
      h('button', { type: 'submit', class: 'button button--primary', id: 'send-button' }, 'Send'),
    );
    this.offUpload = session.client.on('upload', ({ upload }) => {
      const node = this.fileNodes.get(upload.key);
      if (node) updateUpload(node, upload);
    });
  }

  /** Names the person or group the message goes to, for screen readers. */
  setRecipient(title) {
    this.label.textContent = `Message to ${title}`;
  }

  /**
   * Read-only (an archived conversation, or one the user observes), with `reason` shown in place
   * of the text box; `null` opens it again. The server refuses such sends anyway: this only
   * spares the person writing a message that would be refused.
   */
  setReadOnly(reason) {
    const readOnly = Boolean(reason);
    if (readOnly === this.form.classList.contains('composer--read-only')) {
      if (readOnly) this.note.textContent = reason;
      return;
    }
    this.form.classList.toggle('composer--read-only', readOnly);
    for (const control of this.form.querySelectorAll('textarea, button')) control.disabled = readOnly;
    this.note.textContent = reason || '';
    this.note.hidden = !readOnly;
    if (readOnly) this.stopTyping();
  }

  focus() {
    this.input.focus();
  }

  /** Leaving the conversation: files picked but not sent are given up, as the text is. */
  destroy() {
    this.stopTyping();
    this.offUpload();
    for (const upload of this.files) this.session.client.discardUpload(upload);
    this.files = [];
  }

  /** A send the server refused: say why, and give the text back if the box is empty. */
  failed(body, error) {
    this.showError(`Not sent: ${error.message}`);
    if (!this.input.value) this.input.value = body;
  }

  showError(text) {
    this.error.textContent = text;
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

  /** A pasted image (a screenshot) or file is a file to send, not text. */
  onPaste(event) {
    const files = event.clipboardData?.files;
    if (!files || files.length === 0) return;
    event.preventDefault();
    this.addFiles(files);
  }

  /** Files dropped anywhere on `area` (the whole conversation) go with the next message. */
  acceptDrops(area) {
    let depth = 0; // dragenter and dragleave fire for every child the pointer crosses
    const carriesFiles = (event) => event.dataTransfer?.types.includes('Files');
    const done = () => {
      depth = 0;
      area.classList.remove('dropping');
    };
    area.addEventListener('dragenter', (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth += 1;
      area.classList.add('dropping');
    });
    area.addEventListener('dragover', (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault(); // without it the browser opens the file instead of dropping it here
      event.dataTransfer.dropEffect = 'copy';
    });
    area.addEventListener('dragleave', (event) => {
      if (!carriesFiles(event)) return;
      depth -= 1;
      if (depth <= 0) done();
    });
    area.addEventListener('drop', (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      done();
      this.addFiles(event.dataTransfer.files);
      this.input.focus();
    });
  }

  /** Starts uploading each file (client.upload: at once, or when the network is back). */
  addFiles(files) {
    const picked = [...files];
    if (picked.length === 0) return;
    const room = Math.max(0, MAX_FILES - this.files.length);
    this.error.textContent = picked.length > room ? `At most ${MAX_FILES} files go with one message.` : '';
    for (const file of picked.slice(0, room)) {
      const upload = this.session.client.upload(this.conversationId, file);
      this.files.push(upload);
      const node = uploadView(upload, () => this.removeFile(upload));
      this.fileNodes.set(upload.key, node);
      this.fileList.appendChild(node);
    }
    this.fileList.hidden = this.files.length === 0;
  }

  /** Gives up a file before sending (the server forgets an unsent upload at once). */
  removeFile(upload) {
    const index = this.files.indexOf(upload);
    this.session.client.discardUpload(upload);
    this.files.splice(index, 1);
    this.fileNodes.get(upload.key)?.remove();
    this.fileNodes.delete(upload.key);
    this.fileList.hidden = this.files.length === 0;
    // Focus stays among the files (the next one's ×), or goes back to the text box.
    const next = this.files[index] || this.files[index - 1];
    (next ? this.fileNodes.get(next.key).querySelector('.file-remove') : this.input).focus();
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
    const files = this.files;
    if (!body.trim() && files.length === 0) return;
    if (files.some((upload) => upload.state === 'failed')) {
      this.error.textContent = 'Not sent: remove the files that could not be uploaded first.';
      return;
    }
    this.error.textContent = '';
    this.typingSentAt = 0; // a sent message ends typing on the server (PROTOCOL.md §3.8)
    // Files still uploading (or waiting for the network) go with it: the send waits for them.
    // Beside files a blank text is no text.
    this.session.client.send(this.conversationId, body.trim() ? body : '', files);
    this.files = [];
    this.fileNodes.clear();
    replaceChildren(this.fileList);
    this.fileList.hidden = true;
    this.input.value = '';
    this.autoGrow();
    this.onSent();
    this.input.focus();
  }
}

/** A paperclip in the text's colour (SVG attributes, which the page's CSP allows, not styles). */
function clipIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const attributes = {
    viewBox: '0 0 24 24',
    width: '20',
    height: '20',
    fill: 'none',
    stroke: 'currentColor',
    'stroke-width': '2',
    'stroke-linecap': 'round',
    'stroke-linejoin': 'round',
    'aria-hidden': 'true',
    focusable: 'false',
  };
  for (const [name, value] of Object.entries(attributes)) svg.setAttribute(name, value);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute(
    'd',
    'M21 11.5l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l8.9-8.9a3.7 3.7 0 0 1 5.2 5.2l-8.9 8.9a1.8 1.8 0 0 1-2.6-2.6l8.2-8.2',
  );
  svg.appendChild(path);
  return svg;
}
