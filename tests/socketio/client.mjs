// client.mjs: Parley's Socket.IO endpoint driven by the real socket.io-client, as the products'
// front-ends use it. tests/it/socketio.rs starts a server, makes Alice and Bob and their
// conversation, and runs this with one JSON argument:
//   {base, alice, bob, conversation, namespace?, aliased?, bobBase?}
// (`alice` and `bob` are tokens; `bobBase`, another node of a cluster for Bob.) Every step prints its name; the first that fails ends the run
// with a message and exit code 1. Each wait is bounded (PATIENCE).
//
// With `aliased`, the server runs with deploy/socketio-aliases.json and the namespace
// `/messaging`: the steps then speak the names a NestJS front-end of the products uses.

import { io } from 'socket.io-client';

const PATIENCE = 10_000;
const setup = JSON.parse(process.argv[2]);
const { base, conversation } = setup;
const at = (node) => (setup.namespace ? node + setup.namespace : node);
const url = at(base);
const bobUrl = at(setup.bobBase || base);

function step(text) {
  console.log(`- ${text}`);
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

/** Resolves with the first `event` whose payload passes `test`, or fails after PATIENCE. */
function next(socket, event, test = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no ${event} within ${PATIENCE} ms`));
    }, PATIENCE);
    const listener = (data) => {
      if (!test(data)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(data);
    };
    socket.on(event, listener);
  });
}

/** A connected socket for `token`, over `transports` (socket.io-client's default: polling, then the upgrade). */
async function connect(token, transports, where = url) {
  const socket = io(where, { auth: { token }, transports, reconnectionDelay: 100, reconnectionDelayMax: 500 });
  await Promise.race([
    next(socket, 'connect'),
    next(socket, 'connect_error').then((err) => {
      throw new Error(`connect_error: ${err.message}`);
    }),
  ]);
  return socket;
}

/** Emits `event` and waits for its acknowledgement. */
function call(socket, event, data) {
  return socket.timeout(PATIENCE).emitWithAck(event, data);
}

// The names this front-end speaks: Parley's own, or the aliases of deploy/socketio-aliases.json.
const names = setup.aliased
  ? {
      send: 'sendMessage',
      typing: 'user-typing',
      newMessage: 'new-message',
      typingUpdated: 'typing:update',
      presence: 'user:status',
    }
  : {
      send: 'message:send',
      typing: 'typing:start',
      newMessage: 'message:new',
      typingUpdated: 'typing:updated',
      presence: 'presence:updated',
    };

async function main() {
  step('a refused token is a connect_error whose message says why');
  const refused = io(url, { auth: { token: 'not-a-token' }, transports: ['polling'], reconnection: false });
  const error = await next(refused, 'connect_error');
  check(/invalid token/.test(error.message), `the message: ${error.message}`);
  refused.close();

  step('Alice connects with her token (polling, then the upgrade to WebSocket)');
  const alice = await connect(setup.alice);
  if (alice.io.engine.transport.name !== 'websocket') await next(alice.io.engine, 'upgrade');
  check(alice.io.engine.transport.name === 'websocket', 'upgraded to WebSocket');

  step('Bob connects over long-polling only: Alice sees him come online');
  const online = next(alice, names.presence, (p) => p.online === true);
  const bob = await connect(setup.bob, ['polling'], bobUrl);
  check(bob.io.engine.transport.name === 'polling', 'still polling');
  await online;

  step('Alice emits a send with an ack: the ack carries the stored message; camelCase fields are accepted');
  const ack = await call(alice, names.send, { conversationId: conversation, body: 'hello over socket.io', clientId: 'sio-1' });
  check(ack.message && ack.message.seq >= 1, `ack: ${JSON.stringify(ack)}`);
  const first = ack.message.seq;

  step('a refused command answers its ack with {error: {code, message}}');
  const refusal = await call(alice, names.send, { conversationId: conversation, body: '' });
  check(refusal.error && refusal.error.code === 'bad_request', `refusal: ${JSON.stringify(refusal)}`);

  step('Bob receives messages in order, each once');
  const seen = [];
  bob.on(names.newMessage, ({ message }) => seen.push(message.seq));
  for (let i = 0; i < 20; i++) {
    await call(alice, names.send, { conversationId: conversation, body: `m${i}`, clientId: `sio-m${i}` });
  }
  await next(bob, names.newMessage, ({ message }) => message.seq === first + 20).catch(() => {});
  const wanted = Array.from({ length: 20 }, (_, i) => first + 1 + i);
  check(JSON.stringify(seen.filter((s) => s > first)) === JSON.stringify(wanted), `seqs ${seen}`);

  step('Bob types: Alice sees typing');
  const typing = next(alice, names.typingUpdated, (t) => t.typing === true);
  await call(bob, names.typing, { conversationId: conversation });
  await typing;

  step('the same client_id again answers the stored message, and nothing new is broadcast');
  const again = await call(alice, names.send, { conversationId: conversation, body: 'hello over socket.io', clientId: 'sio-1' });
  check(again.message.seq === first, `resent: ${JSON.stringify(again)}`);

  step("Bob's connection drops: he reconnects by himself and syncs what was sent meanwhile");
  const last = first + 20;
  const back = next(bob, 'connect');
  bob.io.engine.close(); // the transport closes, as when a network goes away
  const missed = await call(alice, names.send, { conversationId: conversation, body: 'while you were away' });
  await back;
  const synced = await call(bob, 'sync', { conversations: [{ conversationId: conversation, afterSeq: last }] });
  const bodies = synced.conversations[0].messages.map((m) => m.body);
  check(bodies.includes('while you were away'), `synced ${JSON.stringify(bodies)}`);
  check(synced.conversations[0].messages[0].seq === last + 1, 'nothing lost: sync starts right after');
  check(missed.message.seq === last + 1, 'the missed message is the next one');

  alice.close();
  bob.close();
  step('done');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err.stack || String(err));
    process.exit(1);
  },
);
