//! Faults (issue 4): the real `parley` binary as a child process, broken on purpose. A SIGKILL
//! under load, the database going away behind a TCP proxy the test controls, a SIGTERM with sends
//! in flight, and a client that stops reading. Each checks what PROTOCOL.md promises: nothing
//! acknowledged is lost, seqs have no gaps or duplicates, a retry with the same `client_id` makes
//! no duplicate, every send gets an answer, and one slow client costs bounded memory.

mod common;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use awc::http::Method;
use common::http::{Http, admin};
use common::process::ServerProcess;
use common::raw::{Ending, OP_CLOSE, StalledWs, close_code, parse_frames};
use common::*;
use futures_util::future::{join, join4};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

backends!(
    acked_messages_survive_a_crash_and_retries_do_not_duplicate,
    sigterm_answers_every_send_in_flight_closes_sessions_with_1012_and_exits,
    a_slow_consumer_is_disconnected_and_its_memory_released,
);

/// The database outage needs a PostgreSQL to put a proxy in front of (an embedded SQLite file
/// cannot go away), so it runs on PostgreSQL only.
#[actix_web::test]
async fn a_database_outage_gives_unavailable_and_the_server_recovers_by_itself() {
    if let Some(admin_url) = postgres_url() {
        database_outage(&admin_url).await;
    }
}

/// No rate limit: these tests send as fast as they can.
const UNLIMITED: [(&str, &str); 2] = [("PARLEY_RATE_PER_SEC", "100000"), ("PARLEY_RATE_BURST", "100000")];

// ---------------------------------------------------------------------------------------------
// Crash

/// Sends per WebSocket sender and per REST sender; far more than are sent before the kill.
const WS_SENDS: usize = 400;
const REST_SENDS: usize = 200;
/// WebSocket sends a sender keeps in flight at once.
const WINDOW: usize = 8;
/// The server is killed once this many sends were acked, all senders together.
const KILL_AFTER: usize = 80;

async fn acked_messages_survive_a_crash_and_retries_do_not_duplicate(backend: Backend) {
    let db = Database::create(backend).await;
    let server = server_on(&db, &UNLIMITED).await;
    let http = server.http();
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let carol = http.user("carol").await;
    let dave = http.user("dave").await;
    let (status, group) = http
        .post(
            Some(&alice),
            "/api/conversations",
            json!({"kind": "group", "title": "crash", "member_ids": [bob.id, carol.id, dave.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let conversation = group["id"].as_str().expect("conversation id").to_string();
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;

    // Alice and Bob send over WebSocket (several sends in flight each), Carol and Dave over REST,
    // all into the same group, each send with its own client_id; the server is killed with
    // SIGKILL in the middle of it.
    let progress = Progress::new(KILL_AFTER);
    let senders = join4(
        ws_sender("alice", &mut a, &conversation, &progress),
        ws_sender("bob", &mut b, &conversation, &progress),
        rest_sender("carol", &http, &carol, &conversation, &progress),
        rest_sender("dave", &http, &dave, &conversation, &progress),
    );
    let killer = async {
        tokio::time::timeout(3 * PATIENCE, progress.reached.notified())
            .await
            .unwrap_or_else(|_| panic!("only {} sends were acked before the kill", progress.acked.get()));
        server.signal(libc::SIGKILL);
    };
    let ((alice_sends, bob_sends, carol_sends, dave_sends), ()) = join(senders, killer).await;
    let mut server = server;
    let status = server.wait_exit(PATIENCE).await;
    assert!(!status.success(), "killed, not a clean exit: {status}");
    drop((a, b, server));

    let senders = [(&alice, alice_sends), (&bob, bob_sends), (&carol, carol_sends), (&dave, dave_sends)];
    let attempted: HashSet<&str> = senders.iter().flat_map(|(_, s)| s.iter().map(|s| s.client_id.as_str())).collect();
    let acked = senders.iter().flat_map(|(_, s)| s.iter().filter(|s| s.acked.is_some())).count();
    for (user, sends) in &senders {
        for send in sends.iter() {
            assert_eq!(send.error, None, "{}: a send got an error reply before the crash", user.username);
        }
    }
    assert!(acked >= KILL_AFTER, "{acked} acked");

    // Restarted on the same database: every acked message is there, once, with its seq; seqs run
    // 1..n; nothing is there that no one sent.
    let server = server_on(&db, &UNLIMITED).await;
    let http = server.http();
    let history = http.history(&alice, &conversation).await;
    let stored = check_history(&history);
    for (user, sends) in &senders {
        for send in sends.iter() {
            if let Some(message) = &send.acked {
                let found = stored.get(&send.client_id).unwrap_or_else(|| {
                    panic!(
                        "{}: {} was acked (seq {}) but is not in the history",
                        user.username, send.client_id, message["seq"]
                    )
                });
                assert_eq!(
                    (&found["id"], &found["seq"], &found["body"], &found["sender_id"]),
                    (&message["id"], &message["seq"], &message["body"], &json!(user.id)),
                    "{}: the acked message is stored as acked",
                    send.client_id
                );
            }
        }
    }
    for client_id in stored.keys() {
        assert!(attempted.contains(client_id.as_str()), "{client_id} is stored but was never sent");
    }
    let unacked = attempted.len() - acked;
    let committed_unacked = stored.len() - acked;
    println!(
        "crash: {} sends attempted, {acked} acked, {unacked} unacked of which {committed_unacked} were committed; \
         history of {} messages",
        attempted.len(),
        history.len()
    );

    // Each client retries, with the same client_id and body, what was not acked, and one send
    // that was: a send that had been committed gets the stored message back, one that had not
    // gets the next seq.
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;
    let mut next_seq = history.len() as i64 + 1;
    for (index, (user, sends)) in senders.iter().enumerate() {
        let first_acked = sends.iter().find(|s| s.acked.is_some());
        let retries = sends.iter().filter(|s| s.acked.is_none()).chain(first_acked);
        for send in retries {
            let data = json!({"conversation_id": conversation, "body": send.body, "client_id": send.client_id});
            let message = match index {
                0 => a.ack("message:send", data).await["message"].clone(),
                1 => b.ack("message:send", data).await["message"].clone(),
                _ => {
                    let (status, message) = http
                        .post(
                            Some(user),
                            &format!("/api/conversations/{conversation}/messages"),
                            json!({"body": send.body, "client_id": send.client_id}),
                        )
                        .await;
                    assert_eq!(status, 201, "retry of {}: {message}", send.client_id);
                    message
                }
            };
            match stored.get(&send.client_id) {
                Some(first) => assert_eq!(
                    (&message["id"], &message["seq"]),
                    (&first["id"], &first["seq"]),
                    "retry of {} returns the message stored the first time",
                    send.client_id
                ),
                None => {
                    assert_eq!(message["seq"], next_seq, "retry of {} is stored once, next in line", send.client_id);
                    next_seq += 1;
                }
            }
        }
    }

    // In the end every client_id is stored exactly once, seqs are still 1..n, and what was there
    // after the crash has not moved.
    let after = http.history(&alice, &conversation).await;
    let after_by_client = check_history(&after);
    assert_eq!(after.len() as i64, next_seq - 1);
    let mut ids: Vec<&str> = after_by_client.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = attempted.iter().copied().collect();
    ids.sort_unstable();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every client_id sent is stored, once");
    for message in &history {
        assert_eq!(&after[message["seq"].as_i64().unwrap() as usize - 1], message, "stored messages do not change");
    }
    let (status, listed) = http.get(Some(&dave), &format!("/api/conversations/{conversation}")).await;
    assert_eq!((status, &listed["last_seq"]), (200, &json!(after.len())));
    a.close().await;
    b.close().await;
}

/// One send of a test client and what became of it.
#[derive(Debug)]
struct Attempt {
    client_id: String,
    body: String,
    /// The acked message.
    acked: Option<Value>,
    /// The code of an error reply.
    error: Option<String>,
}

impl Attempt {
    fn new(sender: &str, n: usize) -> Attempt {
        Attempt { client_id: format!("{sender}-{n}"), body: format!("{sender} says {n}"), acked: None, error: None }
    }
}

/// Counts acks across senders and tells when there are enough.
struct Progress {
    acked: Cell<usize>,
    target: usize,
    reached: Notify,
}

impl Progress {
    fn new(target: usize) -> Progress {
        Progress { acked: Cell::new(0), target, reached: Notify::new() }
    }

    fn ack(&self) {
        self.acked.set(self.acked.get() + 1);
        if self.acked.get() == self.target {
            self.reached.notify_one();
        }
    }
}

/// Sends over WebSocket with up to [`WINDOW`] sends in flight, until the connection is gone.
async fn ws_sender(name: &str, ws: &mut Ws, conversation: &str, progress: &Progress) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    'sending: loop {
        while in_flight.len() < WINDOW && attempts.len() < WS_SENDS {
            let attempt = Attempt::new(name, attempts.len());
            let data = json!({"conversation_id": conversation, "body": attempt.body, "client_id": attempt.client_id});
            let Some(reference) = ws.try_command("message:send", data).await else { break 'sending };
            in_flight.insert(reference, attempts.len());
            attempts.push(attempt);
        }
        if in_flight.is_empty() {
            break;
        }
        let Some(frame) = ws.try_next().await else { break };
        let Some(index) = frame["ref"].as_str().and_then(|r| in_flight.remove(r)) else { continue };
        match frame["type"].as_str() {
            Some("ack") => {
                attempts[index].acked = Some(frame["data"]["message"].clone());
                progress.ack();
            }
            _ => attempts[index].error = Some(frame["data"]["code"].as_str().unwrap_or("?").to_string()),
        }
    }
    attempts
}

/// Sends over REST, one after the other, until the server is gone.
async fn rest_sender(
    name: &str,
    http: &Http,
    user: &TestUser,
    conversation: &str,
    progress: &Progress,
) -> Vec<Attempt> {
    let path = format!("/api/conversations/{conversation}/messages");
    let mut attempts = Vec::new();
    while attempts.len() < REST_SENDS {
        let mut attempt = Attempt::new(name, attempts.len());
        let sent = http
            .try_request(
                Method::POST,
                &path,
                Some(user),
                Some(&json!({"body": attempt.body, "client_id": attempt.client_id})),
            )
            .await;
        let done = match sent {
            Ok((201, message)) => {
                attempt.acked = Some(message);
                progress.ack();
                false
            }
            Ok((_, body)) => {
                attempt.error = Some(body["error"]["code"].as_str().unwrap_or("?").to_string());
                false
            }
            Err(_) => true, // the server is gone
        };
        attempts.push(attempt);
        if done {
            break;
        }
    }
    attempts
}

// ---------------------------------------------------------------------------------------------
// Database outage

async fn database_outage(admin_url: &str) {
    let db = Database::create(Backend::Postgres).await;
    let proxy = Proxy::start(host_port(admin_url));
    let through_proxy = pg_url(admin_url, &format!("127.0.0.1:{}", proxy.port), db.pg_name());
    let mut server = server_on(
        &db,
        &[
            UNLIMITED[0],
            UNLIMITED[1],
            ("PARLEY_DATABASE_URL", &through_proxy),
            ("PARLEY_DB_TIMEOUT_MS", "1000"),
            ("PARLEY_DB_POOL_SIZE", "4"),
        ],
    )
    .await;
    let http = server.http();
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let conversation = http.direct(&alice, &bob).await;
    let messages = format!("/api/conversations/{conversation}/messages");
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;
    let mut acked: Vec<Value> = Vec::new();

    // While the database is there, sends are acked.
    for n in 0..3 {
        let sent = a
            .ack(
                "message:send",
                json!({"conversation_id": conversation, "body": "before", "client_id": format!("a-{n}")}),
            )
            .await;
        acked.push(sent["message"].clone());
    }
    let (status, sent) = http.post(Some(&bob), &messages, json!({"body": "before", "client_id": "b-0"})).await;
    assert_eq!(status, 201, "{sent}");
    acked.push(sent);
    let seqs: Vec<&Value> = acked.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);

    // Alice sends a burst; once its first send is acked, the database goes away. Every send of
    // the burst gets an ack or an `unavailable` error, none is left unanswered.
    const BURST: usize = 30;
    let mut unacked: Vec<(String, &TestUser)> = Vec::new();
    let mut burst = Vec::new();
    for n in 0..BURST {
        let client_id = format!("burst-{n}");
        let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
        burst.push((a.command("message:send", data).await, client_id));
    }
    let mut cut = false;
    for (reference, client_id) in burst {
        let reply = a.reply_to(&reference).await;
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply["data"]["message"].clone()),
            _ => {
                assert!(cut, "{client_id} failed before the database went away: {reply}");
                assert_eq!(reply["data"]["code"], "unavailable", "{client_id} in flight at the cut: {reply}");
                unacked.push((client_id, &alice));
            }
        }
        if !cut {
            proxy.cut();
            cut = true;
        }
    }
    println!("outage: of {BURST} sends in flight at the cut, {} were acked", BURST - unacked.len());
    assert!(!unacked.is_empty(), "the cut came after the whole burst was stored");

    // With the database gone, sends over WebSocket and REST fail with `unavailable`: an answer,
    // not a hang.
    for n in 0..3 {
        let client_id = format!("cut-a-{n}");
        let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
        assert_eq!(a.error("message:send", data).await, "unavailable", "WebSocket send {n} during the outage");
        unacked.push((client_id, &alice));
    }
    for n in 0..2 {
        let client_id = format!("cut-b-{n}");
        let (status, body) = http.post(Some(&bob), &messages, json!({"body": client_id, "client_id": client_id})).await;
        assert_eq!((status, &body["error"]["code"]), (503, &json!("unavailable")), "REST send {n} during the outage");
        unacked.push((client_id, &bob));
    }
    let (status, _) = http.get(None, "/readyz").await;
    assert_eq!(status, 503, "not ready without a database");
    // The sessions are still connected and answer.
    assert_eq!(a.ack("ping", json!({})).await, json!({}));
    assert_eq!(b.ack("ping", json!({})).await, json!({}));
    assert_eq!((a.closed, b.closed), (None, None));

    // The database comes back; the server notices by itself.
    proxy.restore();
    server.wait_ready(|_| true).await;

    // The retries of everything not acked are acked; so is a new send, with the next seq, and
    // Bob's session, open all along, gets it live.
    for (client_id, user) in &unacked {
        let message = if user.id == alice.id {
            let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
            a.ack("message:send", data).await["message"].clone()
        } else {
            let (status, message) =
                http.post(Some(user), &messages, json!({"body": client_id, "client_id": client_id})).await;
            assert_eq!(status, 201, "retry of {client_id}: {message}");
            message
        };
        acked.push(message);
    }
    let next =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "after", "client_id": "after"})).await;
    acked.push(next["message"].clone());
    let seen = b.event_where("message:new", |d| d["message"]["client_id"] == "after").await;
    assert_eq!(seen["message"]["seq"], next["message"]["seq"]);

    // Every ack is stored, once, as acked; seqs run 1..n without a gap, and n is the number of
    // client_ids sent (none went missing, none was stored twice).
    let history = http.history(&alice, &conversation).await;
    let stored = check_history(&history);
    for message in &acked {
        let client_id = message["client_id"].as_str().expect("client_id");
        assert_eq!(stored.get(client_id), Some(message), "acked {client_id} is stored as acked");
    }
    assert_eq!(history.len(), 4 + BURST + 3 + 2 + 1);
    assert_eq!(next["message"]["seq"], history.len());
    a.close().await;
    b.close().await;
    drop(server);
    drop(proxy);
}

/// A TCP proxy in front of PostgreSQL, on a thread of its own, that the test can cut (close every
/// connection and refuse new ones) and restore.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, cut_watch) = tokio::sync::watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
                let accept = async {
                    loop {
                        let Ok((mut client, _)) = listener.accept().await else { continue };
                        if *cut_watch.borrow() {
                            continue; // refused: dropped at once
                        }
                        let mut cut = cut_watch.clone();
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cut.wait_for(|cut| *cut) => {}
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime ends the connection tasks and closes their sockets.
        });
        Proxy { port, cut, stop: Some(stop), thread: Some(thread) }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

async fn sigterm_answers_every_send_in_flight_closes_sessions_with_1012_and_exits(backend: Backend) {
    let db = Database::create(backend).await;
    let timeout = SHUTDOWN_TIMEOUT_SECS.to_string();
    let settings = [UNLIMITED[0], UNLIMITED[1], ("PARLEY_SHUTDOWN_TIMEOUT_SECS", timeout.as_str())];
    let mut server = server_on(&db, &settings).await;
    let http = server.http();
    let alice = http.user("alice").await;
    let bob = http.user("bob").await;
    let conversation = http.direct(&alice, &bob).await;
    let messages = format!("/api/conversations/{conversation}/messages");
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let mut b = Ws::open(&server.ws_base(), &bob).await;
    let first =
        a.ack("message:send", json!({"conversation_id": conversation, "body": "first", "client_id": "first"})).await;
    assert_eq!(first["message"]["seq"], 1);
    // Bob's REST client holds a connection the server has accepted (one request answered on it).
    let mut rest = RawHttp::connect(server.addr).await;
    rest.send("GET", "/healthz", None, None).await;
    assert_eq!(rest.response().await.map(|(status, _)| status), Some(200));

    // Ten WebSocket sends and one REST send are in flight when SIGTERM comes.
    let mut in_flight = Vec::new();
    for n in 0..10 {
        let client_id = format!("ws-{n}");
        let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
        in_flight.push((a.command("message:send", data).await, client_id));
    }
    rest.send("POST", &messages, Some(&bob.token), Some(&json!({"body": "rest-0", "client_id": "rest-0"}))).await;
    server.signal(libc::SIGTERM);

    // Each WebSocket send gets its ack or an error before the session closes, with 1012.
    let mut frames = Vec::new();
    while let Some(frame) = a.try_next().await {
        frames.push(frame);
    }
    assert_eq!(a.closed, Some(1012), "Alice's session is closed with 1012 (service restart)");
    let mut acked: Vec<Value> = vec![first["message"].clone()];
    let mut retry: Vec<(String, &TestUser)> = Vec::new();
    let mut silent = Vec::new();
    for (reference, client_id) in &in_flight {
        let replies: Vec<&Value> = frames.iter().filter(|f| f["ref"] == reference.as_str()).collect();
        match replies[..] {
            [reply] if reply["type"] == "ack" => acked.push(reply["data"]["message"].clone()),
            [reply] => {
                assert_eq!(
                    (&reply["type"], &reply["data"]["code"]),
                    (&json!("error"), &json!("unavailable")),
                    "{client_id}"
                );
                retry.push((client_id.clone(), &alice));
            }
            [] => silent.push(client_id.as_str()),
            _ => panic!("{client_id} got {} replies: {replies:?}", replies.len()),
        }
    }
    assert_eq!(
        silent,
        Vec::<&str>::new(),
        "sends in flight that got no reply before the 1012 ({} acked, {} errors)",
        acked.len() - 1,
        retry.len()
    );
    assert_eq!(b.closed_with().await, 1012, "Bob's session is closed with 1012 (service restart)");
    // The REST send gets its answer too: 201 once committed, or 503. Rarely (seen under heavy
    // load), actix's graceful stop closes a kept-alive connection without an answer: the client
    // sees the request fail, not succeed, and retries it with its client_id (checked below: the
    // retry stores it once).
    match rest.response().await {
        Some((201, message)) => acked.push(message),
        Some((503, body)) => {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            retry.push(("rest-0".into(), &bob));
        }
        None => retry.push(("rest-0".into(), &bob)),
        Some(other) => panic!("the REST send in flight got {other:?}, not 201 nor 503"),
    }
    // Sessions were told to reconnect elsewhere: this server takes no new connection.
    assert_eq!(answers(server.addr).await, None, "a new connection was served after the sessions closed");
    // It exits, cleanly, within the shutdown timeout.
    let status = server.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 3)).await;
    assert!(status.success(), "exit status {status}");
    drop(server);
    println!("shutdown: {} of the 11 sends in flight acked, {} got an error", acked.len() - 1, retry.len());

    // Restarted on the same database: every ack is there, once, as acked; seqs run 1..n.
    let server = server_on(&db, &settings).await;
    let http = server.http();
    let history = http.history(&alice, &conversation).await;
    let stored = check_history(&history);
    for message in &acked {
        let client_id = message["client_id"].as_str().expect("client_id");
        assert_eq!(stored.get(client_id), Some(message), "acked {client_id} is stored as acked");
    }
    // The clients retry what got an error, with the same client_id: each is stored once.
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    for (client_id, user) in &retry {
        let message = if user.id == alice.id {
            let data = json!({"conversation_id": conversation, "body": client_id, "client_id": client_id});
            a.ack("message:send", data).await["message"].clone()
        } else {
            let (status, message) =
                http.post(Some(user), &messages, json!({"body": client_id, "client_id": client_id})).await;
            assert_eq!(status, 201, "retry of {client_id}: {message}");
            message
        };
        if let Some(first) = stored.get(client_id) {
            assert_eq!(&message, first, "{client_id} had been stored: the retry returns it");
        }
    }
    let after = http.history(&alice, &conversation).await;
    let after_by_client = check_history(&after);
    let mut ids: Vec<&str> = after_by_client.keys().map(String::as_str).collect();
    ids.sort_unstable();
    let mut expected = vec!["first", "rest-0"];
    expected.extend(in_flight.iter().map(|(_, c)| c.as_str()));
    expected.sort_unstable();
    assert_eq!(ids, expected, "each send is stored exactly once");
    a.close().await;
}

/// Whether a fresh connection to `addr` is served: the status of `GET /readyz`, or `None` when
/// the connection is refused or closed without an answer.
async fn answers(addr: SocketAddr) -> Option<u16> {
    let stream = tokio::time::timeout(PATIENCE, TcpStream::connect(addr)).await.expect("connect in time").ok()?;
    let mut http = RawHttp { stream, buffer: Vec::new() };
    http.send("GET", "/readyz", None, None).await;
    http.response().await.map(|(status, _)| status)
}

// ---------------------------------------------------------------------------------------------
// Slow consumer

/// Characters of each large message: 16,000 four-byte characters, 64,000 bytes.
const LARGE_CHARS: usize = 16_000;
/// Rounds of a slow client coming, being cut off and going.
const ROUNDS: usize = 4;

async fn a_slow_consumer_is_disconnected_and_its_memory_released(backend: Backend) {
    let db = Database::create(backend).await;
    let chars = LARGE_CHARS.to_string();
    let server = server_on(
        &db,
        &[
            UNLIMITED[0],
            UNLIMITED[1],
            ("PARLEY_MAX_MESSAGE_CHARS", &chars),
            ("PARLEY_MAX_FRAME_BYTES", "262144"),
            ("PARLEY_OUTGOING_QUEUE", "256"),
            ("PARLEY_CLOSE_TIMEOUT_MS", "500"),
            // Alice sends as fast as acks come back, which is faster than a person's frame limit.
            ("PARLEY_MAX_FRAMES_PER_SEC", "100000"),
        ],
    )
    .await;
    let http = server.http();
    let admin = admin();
    let alice = http.user("alice").await;
    let slow = http.user("slow").await;
    let conversation = http.direct(&alice, &slow).await;
    let mut a = Ws::open(&server.ws_base(), &alice).await;
    let body = "\u{1F600}".repeat(LARGE_CHARS);
    let mut seq = 0;
    // Warm up with Alice alone, then measure.
    for _ in 0..32 {
        send_large(&mut a, &conversation, &body, &mut seq).await;
    }
    let before = server.rss_kib();
    let mut during = before;
    let mut after_round = Vec::new();

    for round in 1..=ROUNDS {
        // The slow client connects with a small receive buffer and never reads.
        let mut reader = StalledWs::connect(server.addr, &slow.token, Some(4096)).await;
        wait_for_sessions(&http, &admin, 2).await;

        // Alice sends large messages; the slow client is cut off within a bounded number of them.
        const MOST: i64 = 2_000;
        let start = seq;
        let mut cut_off = false;
        while seq - start < MOST {
            send_large(&mut a, &conversation, &body, &mut seq).await;
            if seq % 4 == 0 {
                let rss = server.rss_kib();
                if sessions(&http, &admin).await == 1 {
                    cut_off = true;
                    break;
                }
                during = during.max(rss); // measured while the slow client was connected
            }
        }
        assert!(cut_off, "round {round}: the slow session was still open after {MOST} messages of 64 kB");
        assert_eq!(a.closed, None, "Alice kept up and stayed connected");

        // The server closed the slow client's TCP connection (if its close frame got through,
        // it says 1013).
        let (ending, bytes) = reader.read_to_end().await;
        assert!(matches!(ending, Ending::Eof | Ending::Reset), "{ending:?}");
        if let Some((OP_CLOSE, payload)) = parse_frames(&bytes).last() {
            assert_eq!(close_code(payload), Some(1013), "round {round}: close code");
        }
        println!("slow consumer round {round}: cut off after {} messages", seq - start);

        // Alice's sends go on being acked.
        for _ in 0..64 {
            send_large(&mut a, &conversation, &body, &mut seq).await;
        }
        after_round.push(server.rss_kib());
    }
    let after = server.rss_kib();
    println!(
        "slow consumer memory: VmRSS before {before} KiB, during at most {during} KiB (+{} KiB), after {after} KiB \
         (+{} KiB); after each round {after_round:?} KiB",
        during as i64 - before as i64,
        after as i64 - before as i64
    );
    assert!(during > before + 4 * 1024, "a slow client's queue holds memory while it lasts: {before} → {during} KiB");
    // Released means reused: the allocator keeps what a slow client's queue held (RSS does not
    // fall back, and a later burst may raise its high-water mark a little), but the next slow
    // client reuses it (seen: up to 14 MiB more after the second round than after the first,
    // then flat). A leaked queue (256 frames of 64 kB, 16 MiB) would add 16 MiB a round: 48 MiB
    // over the three rounds after the first, twice the bound.
    let (first, last) = (after_round[0], after_round[ROUNDS - 1]);
    assert!(
        last < first + 24 * 1024,
        "memory grew from round to round: {first} KiB after the first slow client, {last} KiB after the last"
    );
    a.close().await;
}

/// Alice sends one large message: acked, with the next seq.
async fn send_large(a: &mut Ws, conversation: &str, body: &str, seq: &mut i64) {
    *seq += 1;
    let sent = a.ack("message:send", json!({"conversation_id": conversation, "body": body})).await;
    assert_eq!(sent["message"]["seq"], *seq, "Alice's sends are acked in order");
    a.drain(|_| true); // her own message:new events, and the like
}

async fn sessions(http: &Http, admin: &TestUser) -> i64 {
    let (status, actors) = http.get(Some(admin), "/api/admin/actors").await;
    assert_eq!(status, 200, "{actors}");
    actors["sessions"]["count"].as_i64().expect("session count")
}

/// Polls the admin endpoint until the node has `count` sessions.
async fn wait_for_sessions(http: &Http, admin: &TestUser, count: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = sessions(http, admin).await;
        if now == count {
            return;
        }
        assert!(Instant::now() < deadline, "{count} sessions expected, the node has {now}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The server process and its database

/// A database of the test's own, dropped with it: a SQLite file in a temporary directory, or a
/// PostgreSQL database in `PARLEY_TEST_DATABASE_URL`'s server. The directory also holds the
/// servers' logs.
struct Database {
    dir: tempfile::TempDir,
    url: String,
    postgres: Option<(String, String)>,
}

impl Database {
    async fn create(backend: Backend) -> Database {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("parley.db").display());
                Database { dir, url, postgres: None }
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect("PARLEY_TEST_DATABASE_URL");
                let name = format!("parley_f_{}", uuid::Uuid::new_v4().simple());
                pg_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
                let url = pg_url(&admin_url, &host_port(&admin_url), &name);
                Database { dir, url, postgres: Some((admin_url, name)) }
            }
        }
    }

    fn pg_name(&self) -> &str {
        &self.postgres.as_ref().expect("a PostgreSQL database").1
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else { return };
        drop_database_now(admin_url, name);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients of a server process

/// `parley` on `db`, as a child process, once ready.
async fn server_on(db: &Database, env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(Some(db.dir.path()), &db.url, env, |_| true).await
}

/// Checks that the seqs are 1..n, without a gap or a duplicate, and that no client_id is stored
/// twice; returns the messages by client_id.
fn check_history(history: &[Value]) -> HashMap<String, Value> {
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    let expected: Vec<i64> = (1..=history.len() as i64).collect();
    assert_eq!(seqs, expected, "seqs run 1..n without gaps or duplicates");
    let mut by_client = HashMap::new();
    for message in history {
        if let Some(client_id) = message["client_id"].as_str() {
            let first = by_client.insert(client_id.to_string(), message.clone());
            assert!(first.is_none(), "client_id {client_id} is stored twice: {first:?} and {message}");
        }
    }
    by_client
}

/// HTTP/1.1 by hand on one kept-alive connection, to know that a request is on the wire (and
/// its connection accepted) before the server is stopped.
struct RawHttp {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawHttp {
    async fn connect(addr: SocketAddr) -> RawHttp {
        RawHttp { stream: TcpStream::connect(addr).await.expect("connect"), buffer: Vec::new() }
    }

    async fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: parley\r\nContent-Length: {}\r\n", body.len());
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        // A connection the server already closed shows in `response`.
        let _ = self.stream.write_all(request.as_bytes()).await;
    }

    /// The next response (status, JSON body); `None` if the connection ends before a whole one.
    async fn response(&mut self) -> Option<(u16, Value)> {
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_string();
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .map_or(0, |v| v.parse().expect("content-length"));
        while self.buffer.len() < head_end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body: Vec<u8> = self.buffer.drain(..head_end + length).skip(head_end).collect();
        let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON body") };
        Some((status, body))
    }

    /// Reads more; false once the connection ended.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await.expect("an HTTP answer in time") {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The `host:port` of a PostgreSQL URL (port 5432 when it names none).
fn host_port(url: &str) -> String {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// `admin_url` with its host and port replaced by `host_port` and its database by `name`.
fn pg_url(admin_url: &str, host_port: &str, name: &str) -> String {
    let scheme_end = admin_url.find("://").map_or(0, |i| i + 3);
    let rest = &admin_url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let userinfo = rest[..authority_end].rsplit_once('@').map_or("", |(user, _)| user);
    let query = rest.split_once('?').map_or(String::new(), |(_, q)| format!("?{q}"));
    let at = if userinfo.is_empty() { "" } else { "@" };
    format!("{}{userinfo}{at}{host_port}/{name}{query}", &admin_url[..scheme_end])
}
