// The web client end to end, in headless Chromium (Debian's), driven by playwright-core.
//
//   node tests/browser/chat.mjs http://127.0.0.1:PORT
//
// tests/it/web_client.rs starts a fresh server and runs this; it can also run against any server whose
// PARLEY_ADMIN_USERS includes "admin", whose account (PARLEY_ADMIN_PASSWORD_HASH) has the password
// below, and that has none of the other users below yet. Each step waits
// for what a person would see (selectors and text, with timeouts), never for a fixed time.
// Screenshots go to PARLEY_SCREENSHOTS_DIR (default: target/browser-screenshots); the README's
// are made with PARLEY_SCREENSHOTS_DIR=docs/screenshots.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const base = (process.argv[2] || '').replace(/\/$/, '');
if (!base) {
  console.error('usage: node chat.mjs BASE_URL');
  process.exit(2);
}
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shots = path.resolve(repo, process.env.PARLEY_SCREENSHOTS_DIR || 'target/browser-screenshots');
mkdirSync(shots, { recursive: true });
const executablePath = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';

const WAIT = 10_000; // for anything a person would see
const PASSWORD = 'orchid-lantern-42'; // the test harness's, which its admin account has too
const HTML = '<b>bold</b><img src=x onerror=alert(1)>';
const AWAY = ['Lunch at noon?', 'The usual place', 'Tell me when you are back'];

// The whole run has a deadline, so a hang fails instead of stalling `cargo test`.
const deadline = setTimeout(() => {
  console.error('FAILED: the browser test did not finish within 4 minutes');
  process.exit(1);
}, 240_000);

const problems = []; // uncaught page errors and unexpected dialogs (an alert: injected HTML ran)
const pages = [];
let browser;

function step(text) {
  console.log(`- ${text}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** A regular expression matching exactly `text`. */
function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

/** A new browser context (a separate person or device) with one page. */
async function open(name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.message}`));
  // What the page's Content-Security-Policy refuses is reported on the console, not thrown.
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) problems.push(`${name}: ${msg.text()}`);
  });
  // A confirm() the test is about to cause is accepted: each person's `dialogs` lists them.
  const dialogs = [];
  page.on('dialog', (dialog) => {
    const expected = dialogs.shift();
    if (expected && expected.test(dialog.message())) {
      dialog.accept().catch(() => {});
      return;
    }
    problems.push(`${name}: unexpected dialog: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  // The frames the page sends on its WebSockets, to check what the client asks for.
  const sent = [];
  page.on('websocket', (ws) =>
    ws.on('framesent', ({ payload }) => {
      try {
        sent.push(JSON.parse(payload));
      } catch {
        sent.push({ type: '(not JSON)', data: payload });
      }
    }),
  );
  pages.push({ name, page });
  await page.goto(base);
  return { name, context, page, sent, dialogs };
}

async function signUp(person, username, displayName) {
  const { page } = person;
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Display name').fill(displayName);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await connected(page);
}

async function signIn(person, username) {
  const { page } = person;
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await connected(page);
}

async function connected(page) {
  await page.locator('#connection[data-state="connected"]').waitFor();
}

/** Types a message in the composer and presses Enter. */
async function send(page, text) {
  const input = page.getByRole('textbox', { name: /^Message to / });
  await input.fill(text);
  await input.press('Enter');
}

/** The message bodies of the open conversation whose text is exactly `text`. */
function message(page, text) {
  return page.locator('#messages .msg-body').filter({ hasText: exactly(text) });
}

/** Waits until `text` shows exactly once in the open conversation. */
async function seesOnce(page, text) {
  await message(page, text).first().waitFor();
  const count = await message(page, text).count();
  check(count === 1, `"${text}" shows ${count} times`);
}

/** The status under one's own message ("Sent", "Read", "Read by 1"), once it says `status`. */
async function receipt(page, text, status) {
  await page
    .locator('#messages .msg--mine')
    .filter({ has: page.locator('.msg-body').filter({ hasText: exactly(text) }) })
    .locator('.msg-status', { hasText: exactly(status) })
    .waitFor();
}

async function title(page, expected) {
  await page.waitForFunction((t) => document.title === t, expected, { timeout: WAIT });
}

/** A link of the header's navigation. */
function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
}

function listItem(page, conversationId) {
  return page.locator(`#conversation-list .conv-item[data-id="${conversationId}"]`);
}

async function badge(page, conversationId, count) {
  const item = listItem(page, conversationId);
  if (count === 0) {
    await item.waitFor();
    await item.locator('.badge').waitFor({ state: 'detached' });
  } else {
    await item.locator('.badge', { hasText: exactly(`${count} unread`) }).waitFor();
  }
}

/** The open conversation's id, from the address. */
function openConversation(page) {
  const match = page.url().match(/#\/c\/([0-9a-f-]{36})$/);
  check(match, `no conversation is open at ${page.url()}`);
  return match[1];
}

/** Every message on screen once, in seq order without gaps; nothing left waiting to be sent. */
async function consistent(page, who) {
  const { ids, seqs, pending } = await page.evaluate(() => ({
    ids: [...document.querySelectorAll('#messages li[data-id]')].map((li) => li.dataset.id),
    seqs: [...document.querySelectorAll('#messages li[data-id]')].map((li) => Number(li.dataset.seq)),
    pending: document.querySelectorAll('#pending-messages li').length,
  }));
  check(new Set(ids).size === ids.length, `${who}: a message shows twice`);
  for (let i = 1; i < seqs.length; i++) {
    check(seqs[i] === seqs[i - 1] + 1, `${who}: seq ${seqs[i - 1]} is followed by ${seqs[i]}`);
  }
  check(pending === 0, `${who}: ${pending} messages still waiting to be sent`);
}

/** Waits until the image `alt` of the open conversation has arrived; its sizes and its link. */
async function imageLoaded(page, alt) {
  const img = page.locator(`#messages img[alt="${alt}"]`);
  await img.waitFor();
  await img.evaluate(
    (el) =>
      new Promise((resolve, reject) => {
        const settled = () => (el.naturalWidth > 0 ? resolve() : reject(new Error(`${el.alt} did not load`)));
        if (el.complete) return settled();
        el.addEventListener('load', settled);
        el.addEventListener('error', settled);
      }),
  );
  return img.evaluate((el) => {
    const link = el.closest('a');
    return {
      width: el.getAttribute('width'),
      height: el.getAttribute('height'),
      naturalWidth: el.naturalWidth,
      href: link.getAttribute('href'),
      target: link.target,
      rel: link.rel,
    };
  });
}

/** Fetches a link from the server as the page would, without its token (signed links need none). */
function download(page, href) {
  return page.evaluate(async (href) => {
    // Past the browser's cache: downloads may be kept an hour (`Cache-Control: private`).
    const response = await fetch(href, { cache: 'no-store' });
    const bytes = new Uint8Array(await response.arrayBuffer());
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      disposition: response.headers.get('content-disposition'),
      size: bytes.length,
      text: new TextDecoder().decode(bytes),
    };
  }, href);
}

/** Drops a file on an element, as a person dragging it from their desktop would. */
async function dropFile(page, selector, { name, mimeType, text }) {
  await page.locator(selector).evaluate(
    (target, [name, mimeType, text]) => {
      const dataTransfer = new DataTransfer();
      dataTransfer.items.add(new File([text], name, { type: mimeType }));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer }));
      }
    },
    [name, mimeType, text],
  );
}

/** A real PNG (the server decodes what it is sent): `width`×`height`, orange left, blue right. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter method, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height); // each row: filter 0, then its pixels
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      rows.set(x < width / 2 ? [240, 140, 0] : [59, 91, 219], y * (width * 3 + 1) + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** REST as the page's signed-in user (the token is in the tab's sessionStorage). */
function rest(page, method, route, body) {
  return page.evaluate(
    async ([method, route, body]) => {
      const token = sessionStorage.getItem('parley.token');
      const response = await fetch(route, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json().catch(() => null) };
    },
    [method, route, body],
  );
}

/** REST from here, outside any browser. */
async function api(method, route, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(base + route, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function main() {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // What this machine's Chromium needs (see the README): no sandbox as root, no GPU, and no
    // calls home, which a closed network refuses. Playwright gives it a fresh profile.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });

  step('two people sign up in two browsers');
  const alice = await open('alice');
  await alice.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(alice.page, 'sign-in');
  await signUp(alice, 'alice', 'Alice Liddell');
  const bob = await open('bob');
  await signUp(bob, 'bob', 'Bob Builder');
  await bob.page.getByText('No conversations yet.').waitFor();

  step('Alice finds Bob in the directory and contacts him');
  await nav(alice.page, 'People').click();
  await alice.page.getByLabel('Search people').fill('bob');
  await alice.page.locator('#people-results .person').filter({ hasText: '@bob' }).waitFor();
  // Before the search answers, the list shows everyone (the admin account too).
  await alice.page.locator('#people-count', { hasText: exactly('1 person') }).waitFor();
  check((await alice.page.locator('#people-results .person').count()) === 1, 'the search for "bob" finds only Bob');
  await shot(alice.page, 'directory');
  await alice.page.getByRole('button', { name: 'Contact Bob Builder' }).click();
  await alice.page.locator('#conversation-title', { hasText: 'Bob Builder' }).waitFor();
  const direct = openConversation(alice.page);

  step('Alice writes; Bob sees the conversation arrive, unread');
  await send(alice.page, 'Hi Bob! Are you there?');
  await seesOnce(alice.page, 'Hi Bob! Are you there?');
  await receipt(alice.page, 'Hi Bob! Are you there?', 'Sent');
  await badge(bob.page, direct, 1);
  await listItem(bob.page, direct).locator('.conv-preview', { hasText: 'Hi Bob! Are you there?' }).waitFor();
  await title(bob.page, '(1) Parley');
  await bob.page.locator('#total-unread', { hasText: '1 unread' }).waitFor();

  step('Bob contacts Alice: the same conversation opens, and Alice sees her message read');
  await nav(bob.page, 'People').click();
  await bob.page.getByLabel('Search people').fill('Alice');
  await bob.page.getByRole('button', { name: 'Contact Alice Liddell' }).click();
  await bob.page.locator('#conversation-title', { hasText: 'Alice Liddell' }).waitFor();
  check(openConversation(bob.page) === direct, 'both sides have one direct conversation');
  await seesOnce(bob.page, 'Hi Bob! Are you there?');
  await receipt(alice.page, 'Hi Bob! Are you there?', 'Read');
  await badge(bob.page, direct, 0);
  await title(bob.page, 'Parley');
  await bob.page.locator('#total-unread').waitFor({ state: 'hidden' });
  await alice.page.locator('#conversation-subtitle', { hasText: 'Online' }).waitFor();

  step('Bob types: Alice sees it; he sends: she gets the message and the indicator goes');
  const bobInput = bob.page.getByRole('textbox', { name: 'Message to Alice Liddell' });
  await bobInput.pressSequentially('Yes, here!');
  await alice.page.locator('#typing', { hasText: 'Bob Builder is typing…' }).waitFor();
  await bobInput.press('Shift+Enter');
  await bobInput.pressSequentially('Just back from the site.');
  check((await bobInput.inputValue()) === 'Yes, here!\nJust back from the site.', 'Shift+Enter makes a new line');
  await bobInput.press('Enter');
  check((await bobInput.inputValue()) === '', 'Enter sends and empties the composer');
  await seesOnce(alice.page, 'Yes, here!\nJust back from the site.');
  await alice.page.waitForFunction(() => document.querySelector('#typing').textContent === '');
  await receipt(bob.page, 'Yes, here!\nJust back from the site.', 'Read');

  step("Alice looks away: Bob's messages count as unread until she comes back");
  await nav(alice.page, 'Chats').click();
  await send(bob.page, 'Did you get the drawings?');
  await send(bob.page, 'They are on your desk.');
  await badge(alice.page, direct, 2);
  await title(alice.page, '(2) Parley');
  await listItem(alice.page, direct).locator('.conv-preview', { hasText: 'They are on your desk.' }).waitFor();
  await listItem(alice.page, direct).getByRole('link').click();
  await seesOnce(alice.page, 'They are on your desk.');
  await badge(alice.page, direct, 0);
  await title(alice.page, 'Parley');
  await receipt(bob.page, 'They are on your desk.', 'Read');

  step('a message with HTML in it shows as text');
  await send(alice.page, HTML);
  await seesOnce(alice.page, HTML);
  await seesOnce(bob.page, HTML);
  for (const { page } of [alice, bob]) {
    check(
      (await page.locator('#messages img, #messages b, #conversation-list img').count()) === 0,
      'HTML became markup',
    );
  }
  await listItem(bob.page, direct).locator('.conv-preview', { hasText: HTML }).waitFor();

  step('Bob goes offline: what Alice sends meanwhile and what he writes arrive once when he is back');
  // What the protocol client hands to its listeners, and how it came (event, ack or sync).
  await bob.page.evaluate(() => {
    window.delivered = [];
    window.parley.client.on('message:new', ({ message, source }) =>
      window.delivered.push({ id: message.id, body: message.body, source }),
    );
  });
  await bob.context.setOffline(true);
  await bob.page.locator('#connection[data-state="offline"]').waitFor();
  bob.sent.length = 0;
  for (const text of AWAY) await send(alice.page, text);
  await seesOnce(alice.page, AWAY[2]);
  await send(bob.page, 'Back! The train went through a tunnel.');
  await bob.page.locator('#pending-messages .msg-status', { hasText: 'Waiting for connection…' }).waitFor();
  await bob.page.locator('#connection', { hasText: '1 waiting' }).waitFor();
  const queued = await bob.page.evaluate(() => window.parley.client.pending().map((e) => e.client_id));
  await shot(bob.page, 'offline');
  await bob.context.setOffline(false);
  await connected(bob.page);
  for (const text of AWAY) await seesOnce(bob.page, text);
  await seesOnce(bob.page, 'Back! The train went through a tunnel.');
  await seesOnce(alice.page, 'Back! The train went through a tunnel.');
  await bob.page.locator('#pending-messages li').waitFor({ state: 'detached' });
  const flushed = bob.sent.filter((f) => f.type === 'message:send');
  check(
    flushed.length === 1 && flushed[0].data.client_id === queued[0],
    `the queued message is sent once, with its client_id: ${JSON.stringify(flushed)}`,
  );
  const sync = bob.sent.find((f) => f.type === 'sync');
  check(
    sync && sync.data.conversations.some((c) => c.conversation_id === direct && c.after_seq === 5),
    `Bob's client syncs the conversation from seq 5: ${JSON.stringify(sync)}`,
  );
  const delivered = await bob.page.evaluate(() => window.delivered);
  check(
    new Set(delivered.map((d) => d.id)).size === delivered.length,
    `a message was delivered twice: ${JSON.stringify(delivered)}`,
  );
  for (const text of AWAY) {
    check(
      delivered.some((d) => d.body === text && d.source === 'sync'),
      `"${text}" came by sync: ${JSON.stringify(delivered)}`,
    );
  }

  step('the line drops with a send on it, before the server has it: sent again, same client_id');
  const lost = await bob.page.evaluate(() => {
    const { client } = window.parley;
    const socket = client.socket;
    socket.send = () => socket.close(4000, 'the test drops the line'); // the frame goes with it
    const input = document.querySelector('#composer-input');
    input.value = 'Noon works for me.';
    document.querySelector('#composer').requestSubmit();
    return client.pending().map((e) => e.client_id);
  });
  check(lost.length === 1, `one send waits: ${JSON.stringify(lost)}`);
  await seesOnce(alice.page, 'Noon works for me.');
  await connected(bob.page);
  await seesOnce(bob.page, 'Noon works for me.');
  await bob.page.locator('#pending-messages li').waitFor({ state: 'detached' });
  const resent = bob.sent.filter((f) => f.type === 'message:send' && f.data.body === 'Noon works for me.');
  check(
    resent.length === 1 && resent[0].data.client_id === lost[0],
    `sent again with client_id ${lost[0]}: ${JSON.stringify(resent)}`,
  );

  step('the server gets a send but the socket drops before its ack: shown once, stored once');
  await bob.page.evaluate(() => {
    const input = document.querySelector('#composer-input');
    input.value = 'I will bring the drawings.';
    document.querySelector('#composer').requestSubmit();
    // The frame is on its way; the ack will find the socket closing and be dropped.
    window.parley.client.socket.close(4000, 'the test drops the line');
  });
  await seesOnce(alice.page, 'I will bring the drawings.');
  await connected(bob.page);
  await seesOnce(bob.page, 'I will bring the drawings.');
  await bob.page.locator('#pending-messages li').waitFor({ state: 'detached' });
  // Sync usually finds it stored and settles the send; if the resend went first, it carried the
  // same client_id and the server answered with the stored message.
  const tries = bob.sent.filter((f) => f.type === 'message:send' && f.data.body === 'I will bring the drawings.');
  check(
    tries.length >= 1 && tries.every((t) => t.data.client_id === tries[0].data.client_id),
    `every try has one client_id: ${JSON.stringify(tries)}`,
  );
  await send(alice.page, 'See you there');
  await seesOnce(bob.page, 'See you there');
  await consistent(alice.page, 'Alice');
  await consistent(bob.page, 'Bob');
  const history = await rest(bob.page, 'GET', `/api/conversations/${direct}/messages?limit=200`);
  const bodies = history.body.messages.map((m) => m.body);
  check(new Set(bodies).size === bodies.length, `the server stored a message twice: ${JSON.stringify(bodies)}`);
  check(bodies.length === 12, `the server has ${bodies.length} messages, not 12`);
  const stored = history.body.messages.find((m) => m.body === 'Noon works for me.');
  check(stored.client_id === lost[0], `stored with the client_id it was first sent with: ${stored.client_id}`);
  await bobInput.pressSequentially('Bring the');
  await alice.page.locator('#typing', { hasText: 'Bob Builder is typing…' }).waitFor();
  await shot(alice.page, 'conversation');
  await bobInput.fill(''); // an emptied composer stops typing at once
  await alice.page.waitForFunction(() => document.querySelector('#typing').textContent === '');

  step('Alice makes a group with Bob; receipts count readers; the members panel follows roles');
  await nav(alice.page, 'New group').click();
  await alice.page.getByLabel('Group name').fill('Weekend plans');
  await alice.page.getByLabel('Add people').fill('bob');
  await alice.page.getByRole('button', { name: 'Add Bob Builder' }).click();
  await alice.page.locator('#group-members .chip', { hasText: 'Bob Builder' }).waitFor();
  await alice.page.getByRole('button', { name: 'Create group' }).click();
  await alice.page.locator('#conversation-title', { hasText: 'Weekend plans' }).waitFor();
  const group = openConversation(alice.page);
  await alice.page.locator('#conversation-subtitle', { hasText: '2 members' }).waitFor();
  await send(alice.page, 'Who brings the snacks?');
  await badge(bob.page, group, 1);
  await listItem(bob.page, group).getByRole('link').click();
  await seesOnce(bob.page, 'Who brings the snacks?');
  await receipt(alice.page, 'Who brings the snacks?', 'Read by 1');
  await alice.page.getByRole('button', { name: 'Members' }).click();
  await alice.page.locator('#member-list .member', { hasText: 'Bob Builder' }).waitFor();
  await alice.page.getByRole('button', { name: 'Remove Bob Builder' }).waitFor();
  await alice.page.getByLabel('Add people').waitFor();
  await shot(alice.page, 'group');
  await bob.page.getByRole('button', { name: 'Members' }).click();
  await bob.page.getByRole('button', { name: 'Leave group' }).waitFor();
  check((await bob.page.getByRole('button', { name: /^Remove / }).count()) === 0, 'a member cannot remove others');
  check(!(await bob.page.getByLabel('Add people').isVisible()), 'a member cannot add people');
  await bob.page.getByRole('button', { name: 'Close' }).click();

  step('Alice archives the group: Bob sees it read-only, with the archive message; restored, he writes again');
  const archived = await rest(alice.page, 'POST', `/api/conversations/${group}/archive`);
  check(archived.status === 200 && archived.body.archived_at, `archive answered ${archived.status}`);
  await seesOnce(bob.page, 'Alice Liddell archived this conversation');
  await bob.page.locator('#composer-note', { hasText: 'This conversation is archived' }).waitFor();
  check(!(await bob.page.locator('#composer-input').isVisible()), 'no text box while archived');
  const restored = await rest(alice.page, 'POST', `/api/conversations/${group}/restore`);
  check(restored.status === 200 && restored.body.archived_at === null, `restore answered ${restored.status}`);
  await bob.page.locator('#composer-input').waitFor();
  check(!(await bob.page.locator('#composer-note').isVisible()), 'the note is gone once restored');
  await send(bob.page, 'Back in business');
  await seesOnce(alice.page, 'Back in business');

  step('history: older pages load as Alice scrolls up');
  // The admin account is made by the server at start (admin names cannot be registered).
  const admin = await api('POST', '/api/auth/login', { username: 'admin', password: PASSWORD });
  check(admin.status === 200, `sign in as admin: ${admin.status}`);
  const aliceId = await alice.page.evaluate(() => window.parley.store.me.id);
  const long = await api('POST', '/api/conversations', { kind: 'direct', user_id: aliceId }, admin.body.token);
  for (let n = 1; n <= 70; n++) {
    const sent = await api(
      'POST',
      `/api/conversations/${long.body.id}/messages`,
      { body: `History ${n}`, client_id: `h${n}` },
      admin.body.token,
    );
    if (sent.status === 429)
      n--; // over the rate limit: the same one again
    else check(sent.status === 201, `history message ${n}: ${sent.status}`);
  }
  await badge(alice.page, long.body.id, 70);
  await listItem(alice.page, long.body.id).getByRole('link').click();
  await seesOnce(alice.page, 'History 70');
  check((await message(alice.page, 'History 1').count()) === 0, 'the first page is the latest 50');
  const scroller = alice.page.locator('#message-scroller');
  for (let round = 0; round < 5 && (await message(alice.page, 'History 1').count()) === 0; round++) {
    const before = await alice.page.locator('#messages li').count();
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await alice.page.waitForFunction((n) => document.querySelectorAll('#messages li').length > n, before);
  }
  await seesOnce(alice.page, 'History 1');
  await alice.page.getByText('This is the beginning of the conversation.').waitFor();
  check((await alice.page.locator('#messages li').count()) === 70, 'all 70 messages, once each');
  await consistent(alice.page, 'Alice');
  await badge(alice.page, long.body.id, 0);

  step('the admin signs in and watches the live actors');
  const ada = await open('admin');
  await signIn(ada, 'admin');
  await nav(ada.page, 'Admin').click();
  await ada.page.locator(`#admin-actors tr[data-id="${direct}"]`).waitFor();
  await ada.page.locator(`#admin-actors tr[data-id="${long.body.id}"]`, { hasText: 'Alice Liddell' }).waitFor();
  const firstUpdate = await ada.page.locator('#admin-updated').textContent();
  await ada.page.waitForFunction((t) => document.querySelector('#admin-updated').textContent !== t, firstUpdate);
  await shot(ada.page, 'admin');
  check((await nav(bob.page, 'Admin').count()) === 0, 'Bob is no admin');

  step('Bob on his phone: a second session, narrow screen, the same conversations');
  const phone = await open('bob-phone', { width: 390, height: 760 });
  await signIn(phone, 'bob');
  await listItem(phone.page, direct).waitFor();
  check(!(await phone.page.locator('#main').isVisible()), 'the phone shows the list alone');
  await shot(phone.page, 'phone-list');
  await listItem(phone.page, direct).getByRole('link').click();
  await seesOnce(phone.page, 'See you there');
  check(!(await phone.page.locator('.sidebar').isVisible()), 'the phone shows the conversation alone');
  await send(phone.page, 'From my phone');
  await seesOnce(phone.page, 'From my phone');
  await openDirect(alice, direct);
  await seesOnce(alice.page, 'From my phone');
  await listItem(bob.page, direct).locator('.conv-preview', { hasText: 'You: From my phone' }).waitFor();
  await badge(bob.page, direct, 0); // his own message, from his other device, is not unread
  await shot(phone.page, 'phone-conversation');
  await phone.page.getByRole('link', { name: 'Back to chats' }).click();
  await listItem(phone.page, direct).waitFor();

  step('keyboard: Tab reaches the composer, with a visible focus ring');
  await alice.page.getByRole('textbox', { name: /^Message to / }).focus();
  await alice.page.keyboard.press('Shift+Tab');
  await alice.page.keyboard.press('Tab');
  const ring = await alice.page.evaluate(() => {
    const el = document.activeElement;
    return { id: el.id, outline: getComputedStyle(el).outlineStyle };
  });
  check(ring.id === 'composer-input' && ring.outline !== 'none', `focus ring on the composer: ${JSON.stringify(ring)}`);

  step('a right-to-left override in a message is shown as a mark, not obeyed');
  await send(alice.page, 'https://evil.example/\u202Egnp.exe');
  await seesOnce(alice.page, 'https://evil.example/⟦U+202E⟧gnp.exe');

  step('Alice sends a photo: Bob sees its thumbnail, and his list says "Photo"');
  const sunset = png(480, 360);
  const picker = alice.page.locator('#attach-input');
  await picker.setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: sunset });
  await alice.page.locator('#composer-files .upload[data-state="uploaded"]', { hasText: 'sunset.png' }).waitFor();
  await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
  await alice.page.locator('#composer-files').waitFor({ state: 'hidden' });
  await imageLoaded(alice.page, 'sunset.png');
  const preview = (person) => listItem(person.page, direct).locator('.conv-preview');
  await preview(alice).filter({ hasText: exactly('You: Photo') }).waitFor();
  await preview(bob).filter({ hasText: exactly('Photo') }).waitFor();
  await openDirect(bob, direct);
  const thumb = await imageLoaded(bob.page, 'sunset.png');
  // Sized before it loads, as the server's thumbnail is: the image scaled to fit 320×320.
  check(thumb.width === '320' && thumb.height === '240', `the thumbnail's size: ${JSON.stringify(thumb)}`);
  check(thumb.naturalWidth === 320, `the thumbnail is 320 pixels wide: ${JSON.stringify(thumb)}`);
  check(
    thumb.target === '_blank' && thumb.rel === 'noopener' && thumb.href.startsWith('/api/attachments/'),
    `the thumbnail opens the image in a new tab: ${JSON.stringify(thumb)}`,
  );
  const original = await download(bob.page, thumb.href);
  check(
    original.status === 200 && original.type.startsWith('image/png') && original.size === sunset.length,
    `the full image: ${JSON.stringify({ ...original, text: undefined })}`,
  );
  await shot(bob.page, 'photo');

  step('Bob, offline, drops a file on the conversation and sends it: it waits, then goes once');
  await bob.context.setOffline(true);
  await bob.page.locator('#connection[data-state="offline"]').waitFor();
  bob.sent.length = 0;
  const notes = 'Saturday: bring the drawings and the snacks.\n';
  await dropFile(bob.page, '#message-scroller', { name: 'notes.txt', mimeType: 'text/plain', text: notes });
  await bob.page.locator('#composer-files .upload[data-state="waiting"]', { hasText: 'notes.txt' }).waitFor();
  await send(bob.page, 'My notes for Saturday');
  await bob.page.locator('#pending-messages .upload', { hasText: 'notes.txt' }).waitFor();
  await bob.page.locator('#connection', { hasText: '1 waiting' }).waitFor();
  const [waiting] = await bob.page.evaluate(() => window.parley.client.pending().map((e) => e.client_id));
  await bob.context.setOffline(false);
  await connected(bob.page);
  await seesOnce(alice.page, 'My notes for Saturday');
  const chip = alice.page.locator('#messages .file-chip', { hasText: 'notes.txt' });
  await chip.waitFor();
  await seesOnce(bob.page, 'My notes for Saturday');
  await bob.page.locator('#pending-messages li').waitFor({ state: 'detached' });
  const withFile = bob.sent.filter((f) => f.type === 'message:send');
  check(
    withFile.length === 1 && withFile[0].data.client_id === waiting && withFile[0].data.attachment_ids?.length === 1,
    `the queued message is sent once, with its client_id and its file: ${JSON.stringify(withFile)}`,
  );
  const file = await download(alice.page, await chip.getAttribute('href'));
  check(
    file.status === 200 && /^attachment/.test(file.disposition) && file.text === notes,
    `the file downloads as it was sent: ${JSON.stringify(file)}`,
  );

  step('Alice removes her photo: both see it removed, and its link stops working');
  const photo = alice.page.locator('#messages .attachment', { has: alice.page.locator('img[alt="sunset.png"]') });
  await photo.hover();
  alice.dialogs.push(/^Remove sunset\.png/);
  await photo.getByRole('button', { name: 'Remove sunset.png' }).click();
  for (const { page } of [alice, bob]) {
    await page.locator('#messages .msg--system', { hasText: 'removed sunset.png' }).waitFor();
    await page.locator('#messages .file-removed').waitFor();
    check((await page.locator('#messages img[alt="sunset.png"]').count()) === 0, 'the removed photo still shows');
  }
  check(alice.dialogs.length === 0, 'Alice was asked to confirm');
  check((await download(bob.page, thumb.href)).status === 404, 'the link of a removed file still works');
  await consistent(alice.page, 'Alice');
  await consistent(bob.page, 'Bob');

  step('Bob signs out');
  await bob.page.getByRole('button', { name: 'Sign out' }).click();
  await bob.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  check((await bob.page.evaluate(() => sessionStorage.getItem('parley.token'))) === null, 'the token is gone');

  check(problems.length === 0, problems.join('\n'));
}

/** Opens the direct conversation in Alice's page (she was in the long one) and returns the page. */
async function openDirect(person, conversationId) {
  await listItem(person.page, conversationId).getByRole('link').click();
  await person.page.locator(`.conversation[data-id="${conversationId}"]`).waitFor();
  return person.page;
}

try {
  await main();
  console.log('browser test passed');
} catch (err) {
  console.error(`FAILED: ${err.stack || err}`);
  for (const problem of problems) console.error(problem);
  for (const { name, page } of pages) {
    const file = path.join(shots, `failure-${name}.png`);
    await page.screenshot({ path: file }).catch(() => {});
    console.error(`screenshot of ${name}'s page: ${file}`);
  }
  process.exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(deadline);
}
