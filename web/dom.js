// dom.js: the few helpers the views share. Every piece of text goes into the page as a text node
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
