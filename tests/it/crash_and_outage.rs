//! Crashes and outages, on the real `parley` binary as a child process: a SIGKILL under load
//! loses nothing acknowledged and a retry with the same `client_id` makes no duplicate; a
//! database that goes away (behind a TCP proxy the test controls) gives `unavailable`, and the
//! server recovers by itself.
//!
//! Longer than 400 lines: the two scenarios share their senders and bookkeeping (attempts,
//! progress), which would otherwise be split from the tests that explain them.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use awc::http::Method;
use futures_util::future::{join, join4};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::common::db::{host_port, pg_url};
use crate::common::process::{ServerProcess, UNLIMITED, resend};
use crate::common::*;

backends!(acked_messages_survive_a_crash_and_retries_do_not_duplicate,);

/// Sends per WebSocket sender and per REST sender; far more than are sent before the kill.
const WS_SENDS: usize = 400;

const REST_SENDS: usize = 200;

/// WebSocket sends a sender keeps in flight at once.
const WINDOW: usize = 8;

/// The server is killed once this many sends were acked, all senders together.
const KILL_AFTER: usize = 80;

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

async fn database_outage(admin_url: &str) {
    let db = FreshDatabase::create(Backend::Postgres).await;
    let proxy = Proxy::start(host_port(admin_url));
    let through_proxy = pg_url(admin_url, &format!("127.0.0.1:{}", proxy.port), db.pg_name());
    let mut server = ServerProcess::on(
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
        let message = resend(&mut a, &http, &alice, user, &conversation, client_id).await;
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

async fn acked_messages_survive_a_crash_and_retries_do_not_duplicate(backend: Backend) {
    let db = FreshDatabase::create(backend).await;
    let server = ServerProcess::on(&db, &UNLIMITED).await;
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
    let server = ServerProcess::on(&db, &UNLIMITED).await;
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

/// The database outage needs a PostgreSQL to put a proxy in front of (an embedded SQLite file
/// cannot go away), so it runs on PostgreSQL only.
#[actix_web::test]
async fn a_database_outage_gives_unavailable_and_the_server_recovers_by_itself() {
    if let Some(admin_url) = postgres_for(Suite::Postgres) {
        database_outage(&admin_url).await;
    }
}
