// dom.js: the few helpers the views share, and how files look wherever they show (the banner
// "Files" below). Every piece of text goes into the page as a text node
// (strings given to h() become Text nodes, never HTML), so user text can never become markup.
// Nor can it hide what it is: bidirectional embeddings, overrides and isolates (U+202A-202E,
// U+2066-2069) are shown as visible marks instead of reordering the text, so that a body like
// "https://evil.example/" + U+202E + "gnp.exe" cannot pass for a link to a .png. The names and
// bodies are also isolated from the text around them (style.css: unicode-bidi).

/**
 * Creates an element: `h('button', {class: 'x', onclick: fn, 'aria-label': 'Close'}, 'text', child)`.
 * Attributes starting with `on` become listeners; `false`/`null` attributes are left out; string
 * children become text nodes; arrays of children are flattened; null children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value') {
      el.value = value;
    } else if (name === 'style') {
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      el.style.cssText = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** The header of a page: a link back to the chats, then the page's heading element. */
export function pageHead(heading) {
  return h(
    'header',
    { class: 'page-head' },
    h('a', { class: 'back', href: '#/', 'aria-label': 'Back to chats' }, '‹'),
    heading,
  );
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(visibleText(String(child))));
  }
}

const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** `text` with each bidirectional control replaced by a visible mark naming it: ⟦U+202E⟧. */
export function visibleText(text) {
  return text.replace(BIDI_CONTROLS, (c) => `⟦U+${c.codePointAt(0).toString(16).toUpperCase()}⟧`);
}

/** Replaces all children of `el`. */
export function replaceChildren(el, ...children) {
  el.textContent = '';
  append(el, children);
}

/** Text only a screen reader reads. */
export function srOnly(text) {
  return h('span', { class: 'visually-hidden' }, text);
}

/** Runs `fn` once calls have stopped for `ms`. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A round avatar with the person's initials (and, when `online` is a boolean, a presence dot). */
export function avatar(name, online) {
  const initials = (name || '?')
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join('');
  return h(
    'span',
    { class: 'avatar', 'aria-hidden': 'true', style: `--hue: ${hue(name || '')}` },
    initials || '?',
    typeof online === 'boolean' ? h('span', { class: online ? 'dot dot--online' : 'dot' }) : null,
  );
}

function hue(text) {
  let sum = 0;
  for (const c of text) sum = (sum * 31 + c.codePointAt(0)) % 360;
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Times

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const day = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "14:05" for a message. */
export function timeOfDay(iso) {
  return clock.format(new Date(iso));
}

/** The full date and time, for a tooltip. */
export function fullTime(iso) {
  return full.format(new Date(iso));
}

/** "14:05" today, "Mon" this week, "21 Nov" before: for the conversation list. */
export function shortTime(iso) {
  const date = new Date(iso);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return clock.format(date);
  if (now - date < 6 * 86_400_000) return weekday.format(date);
  return day.format(date);
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", then a date. */
export function ago(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 7 * 86_400) {
    const days = Math.floor(seconds / 86_400);
    return days === 1 ? 'yesterday' : `${days} days ago`;
  }
  return `on ${day.format(new Date(iso))}`;
}

/** "Online", "last seen 5 min ago", or "" when nothing is known. */
export function presenceText(presence) {
  if (!presence) return '';
  if (presence.online) return 'Online';
  return presence.last_seen_at ? `last seen ${ago(presence.last_seen_at)}` : 'Offline';
}

// ---------------------------------------------------------------------------------------------
// Files (PROTOCOL.md §2.10). In a message: an image as its thumbnail, which opens the full image
// in a new tab; any other file as a chip with its name and size, which downloads it; a removed
// one as a small placeholder. On its way: an upload's name, size, progress bar and state. In the
// conversation list: "Photo" or the file's name. Nothing shows a picked image before it is
// uploaded: that would take a blob: URL, and the page's CSP allows images from the server only.

const THUMBNAIL_MAX_PX = 320; // the server's thumbnails fit in 320×320

/** "512 B", "12 KB", "3.4 MB". */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function isImage(attachment) {
  return (attachment.content_type || '').startsWith('image/');
}

/** A message's files in a few words: "Photo", "notes.pdf", "Photo and 2 more". */
export function filesSummary(attachments) {
  const first = attachments[0];
  const name = isImage(first) ? 'Photo' : first.filename;
  return attachments.length > 1 ? `${name} and ${attachments.length - 1} more` : name;
}

/**
 * One file of a message, as a node marked with its id (to be replaced once it is removed).
 * `onRemove(attachment)`, for those who may remove it, adds a × button that asks first.
 */
export function attachmentView(attachment, onRemove) {
  if (attachment.removed || !attachment.url) {
    return h(
      'div',
      { class: 'attachment attachment--removed', 'data-attachment-id': attachment.id },
      h('span', { class: 'file-removed', title: attachment.filename }, 'File removed'),
    );
  }
  const remove = onRemove
    ? h(
        'button',
        {
          type: 'button',
          class: 'file-remove',
          'aria-label': `Remove ${attachment.filename}`,
          title: 'Remove this file for everyone',
          onclick: () => onRemove(attachment),
        },
        '×',
      )
    : null;
  return h(
    'div',
    { class: 'attachment', 'data-attachment-id': attachment.id },
    attachment.thumbnail_url ? thumbnail(attachment) : fileChip(attachment),
    remove,
  );
}

/** The thumbnail, sized before it loads (no jump as it arrives), opening the full image. */
function thumbnail(attachment) {
  const size = thumbnailSize(attachment);
  return h(
    'a',
    {
      class: 'thumb',
      href: attachment.url,
      target: '_blank',
      rel: 'noopener',
      title: `${attachment.filename}: open full size`,
    },
    h('img', {
      src: attachment.thumbnail_url,
      alt: attachment.filename,
      width: size?.width,
      height: size?.height,
      loading: 'lazy',
      decoding: 'async',
    }),
  );
}

/** The thumbnail's size: the image's, scaled down to fit the server's box. */
function thumbnailSize({ width, height }) {
  if (!width || !height) return null;
  const scale = Math.min(1, THUMBNAIL_MAX_PX / width, THUMBNAIL_MAX_PX / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Any other file: its type's extension, name and size; the server sends it as a download. */
function fileChip(attachment) {
  const extension = attachment.filename.includes('.') ? attachment.filename.split('.').pop() : '';
  return h(
    'a',
    { class: 'file-chip', href: attachment.url, download: attachment.filename },
    h('span', { class: 'file-icon', 'aria-hidden': 'true' }, extension.slice(0, 4).toUpperCase() || 'FILE'),
    h(
      'span',
      { class: 'file-text' },
      h('span', { class: 'file-name' }, attachment.filename),
      h('span', { class: 'file-size' }, `${formatSize(attachment.size)} · Download`),
    ),
  );
}

/**
 * A file on its way (client.upload()): name, size, a progress bar and what it waits for.
 * `onRemove(upload)` adds a × to give it up. updateUpload() follows its changes.
 */
export function uploadView(upload, onRemove) {
  const node = h(
    'li',
    { class: 'upload', 'data-key': upload.key },
    h(
      'span',
      { class: 'upload-text' },
      h('span', { class: 'upload-name' }, upload.filename),
      h('span', { class: 'upload-status' }),
    ),
    h('progress', { max: 1, value: 0, 'aria-label': `Uploading ${upload.filename}` }),
    onRemove
      ? h(
          'button',
          {
            type: 'button',
            class: 'file-remove',
            'aria-label': `Remove ${upload.filename}`,
            onclick: () => onRemove(upload),
          },
          '×',
        )
      : null,
  );
  updateUpload(node, upload);
  return node;
}

export function updateUpload(node, upload) {
  node.dataset.state = upload.state;
  const progress = node.querySelector('progress');
  progress.value = upload.progress;
  progress.hidden = upload.state !== 'uploading';
  node.querySelector('.upload-status').textContent = `${formatSize(upload.size)} · ${uploadState(upload)}`;
}

function uploadState(upload) {
  switch (upload.state) {
    case 'uploading':
      return `${Math.round(upload.progress * 100)}%`;
    case 'uploaded':
      return 'Uploaded';
    case 'failed':
      return `Not uploaded: ${upload.error?.message || 'refused'}`;
    case 'lost':
      return 'Lost when the page was reloaded';
    case 'discarded':
      return 'Removed';
    default:
      return upload.error ? 'Waiting to try again…' : 'Waiting for connection…';
  }
}
