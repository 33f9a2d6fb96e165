//! The connection mode: N idle, authenticated WebSockets (like real idle clients: they answer
//! pings), opened with bounded concurrency, held, and then the server's memory per connection.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt, stream};
use tokio::sync::oneshot;

use crate::setup::BenchUser;
use crate::socket::{self, Socket};

/// What the connection mode saw.
pub struct Held {
    pub connected: u64,
    pub failed: u64,
    pub connect_errors: BTreeMap<String, u64>,
    pub connect_s: f64,
    pub disconnects_while_held: u64,
    pub server_rss_before_kb: Option<u64>,
    pub server_rss_after_kb: Option<u64>,
    /// The generator's own, while holding.
    pub loadgen_rss_kb: Option<u64>,
}

struct Opened {
    connected: u64,
    errors: BTreeMap<String, u64>,
}

pub fn hold(args: &crate::args::Args, users: Vec<BenchUser>) -> Result<Held, String> {
    let threads = usize::from(args.threads);
    let server_rss = || crate::usage::sum(&args.server_pid, crate::usage::rss_kb);
    let server_rss_before_kb = server_rss();
    let mut shards: Vec<Vec<BenchUser>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, user) in users.into_iter().enumerate() {
        shards[i % threads].push(user);
    }
    eprintln!(
        "[parley-bench] opening {} connections, {} at a time",
        args.connections.unwrap_or(0),
        args.connect_concurrency
    );
    let started = Instant::now();
    let (opened_tx, opened_rx) = mpsc::channel::<Opened>();
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    for (t, shard) in shards.into_iter().enumerate() {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let opened_tx = opened_tx.clone();
        let ws_bases = args.ws_bases();
        let concurrency = args.connect_concurrency.div_ceil(threads).max(1);
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(thread_main(shard, ws_bases, concurrency, opened_tx, stop_rx))
            })
            .map_err(|err| format!("cannot start a thread: {err}"))?;
        handles.push(handle);
    }
    drop(opened_tx);
    let mut connected = 0;
    let mut connect_errors = BTreeMap::new();
    for opened in opened_rx.iter().take(threads) {
        connected += opened.connected;
        for (k, n) in opened.errors {
            *connect_errors.entry(k).or_default() += n;
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let failed = connect_errors.values().sum();
    eprintln!("[parley-bench] {connected} connected, {failed} failed in {connect_s:.1} s; holding {} s", args.hold);
    // Held idle, so that the server's RSS settles (lazy buffers, allocator) before it is read.
    std::thread::sleep(Duration::from_secs_f64(args.hold));
    let server_rss_after_kb = server_rss();
    let loadgen_rss_kb = crate::usage::rss_kb("self");
    for stop in stops {
        let _ = stop.send(());
    }
    let mut disconnects_while_held = 0;
    for handle in handles {
        disconnects_while_held += handle.join().map_err(|_| "a thread panicked".to_string())?;
    }
    Ok(Held {
        connected,
        failed,
        connect_errors,
        connect_s,
        disconnects_while_held,
        server_rss_before_kb,
        server_rss_after_kb,
        loadgen_rss_kb,
    })
}

/// Opens this thread's connections, reports, holds them until `stop`; returns the drops.
async fn thread_main(
    users: Vec<BenchUser>,
    ws_bases: Vec<String>,
    concurrency: usize,
    opened: mpsc::Sender<Opened>,
    stop: oneshot::Receiver<()>,
) -> u64 {
    let client = crate::setup::client();
    let drops = Rc::new(Cell::new(0u64));
    let (client, ws_bases) = (&client, &ws_bases);
    let results: Vec<Result<(), String>> = stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let drops = drops.clone();
            async move {
                let (socket, _) = socket::connect(client, &ws_bases[i % ws_bases.len()], &user.token).await?;
                actix_web::rt::spawn(idle(socket, drops));
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut report = Opened { connected: 0, errors: BTreeMap::new() };
    for result in results {
        match result {
            Ok(()) => report.connected += 1,
            Err(err) => *report.errors.entry(socket::error_key(&err)).or_default() += 1,
        }
    }
    let _ = opened.send(report);
    let _ = stop.await;
    drops.get()
}

/// An idle client: answers pings, counts the connection's end as a drop.
async fn idle(mut socket: Socket, drops: Rc<Cell<u64>>) {
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Frame::Ping(payload)) => {
                if socket.send(Message::Pong(payload)).await.is_err() {
                    break;
                }
            }
            Ok(Frame::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drops.set(drops.get() + 1);
}
