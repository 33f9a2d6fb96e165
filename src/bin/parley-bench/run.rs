//! The message mode: every member of every conversation sends to it on a fixed schedule,
//! whatever the acks do (open loop), and latency counts from when a message was *due*, so a
//! late generator or a saturated server shows as latency (no coordinated omission).
//!
//! The conversations are dealt over `--threads` threads, each a single-threaded runtime that
//! holds every member of its conversations: deliveries are matched to sends without locks.
//! Each connection has a reader task (acks, errors, deliveries, pings) and a writer task that
//! sleeps until its next message is due and sends everything due by then (both in `traffic.rs`).
//! What they count is kept in `tally.rs`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc;

use futures_util::{StreamExt, stream};
use tokio::sync::{mpsc as local, oneshot};

use crate::clock::{Clock, Schedule};
use crate::setup::{BenchConversation, BenchUser};
use crate::socket::{self, Socket};
use crate::tally::{Rec, Sends, State, Tally};
use crate::traffic::{Writer, reader};

/// One connection of a thread: its user and, for members, what they send.
struct Member {
    user: BenchUser,
    sends: Option<Sends>,
}

/// What the message mode measured.
pub struct Outcome {
    pub tally: Tally,
    /// The CPU report of the measured window.
    pub cpu: serde_json::Value,
    /// The server's and the generator's RSS at the end of the schedule.
    pub server_rss_kb: Option<u64>,
    pub loadgen_rss_kb: Option<u64>,
}

/// Runs the message mode; the figures of every thread merged.
pub fn run(
    args: &crate::args::Args,
    users: Vec<BenchUser>,
    conversations: Vec<BenchConversation>,
) -> Result<Outcome, String> {
    let threads = usize::from(args.threads);
    let clock = Clock::new();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    // Deal conversations (all their members) round-robin over threads, then idle users.
    let mut shards: Vec<Vec<Member>> = (0..threads).map(|_| Vec::new()).collect();
    let mut in_conversation = vec![false; users.len()];
    let mut senders = 0u64;
    for (c, conversation) in conversations.iter().enumerate() {
        let others = u16::try_from(conversation.members.len() - 1).unwrap_or(u16::MAX);
        for &m in &conversation.members {
            in_conversation[m] = true;
            shards[c % threads].push(Member {
                user: users[m].clone(),
                sends: Some(Sends { first: senders, conversation: conversation.id.clone(), others }),
            });
            senders += 1;
        }
    }
    for (i, user) in users.iter().enumerate().filter(|(i, _)| !in_conversation[*i]) {
        shards[i % threads].push(Member { user: user.clone(), sends: None });
    }

    let total = (args.rate * (args.warmup + args.duration)).floor() as u64;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut starts = Vec::new();
    let mut handles = Vec::new();
    for (t, members) in shards.into_iter().enumerate() {
        let (start_tx, start_rx) = oneshot::channel::<Option<Schedule>>();
        starts.push(start_tx);
        let ready_tx = ready_tx.clone();
        let ws_bases = args.ws_bases();
        let concurrency = args.connect_concurrency.div_ceil(threads);
        let body_size = args.body_size;
        let (run_id, drain_us) = (run_id.clone(), (args.drain * 1e6) as u64);
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(thread_main(ThreadPlan {
                    members,
                    ws_bases,
                    concurrency,
                    body_size,
                    run_id,
                    drain_us,
                    clock,
                    total,
                    ready: ready_tx,
                    start: start_rx,
                }))
            })
            .map_err(|err| format!("cannot start a thread: {err}"))?;
        handles.push(handle);
    }
    drop(ready_tx);

    let mut failure = None;
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => failure = Some(err),
            Err(_) => failure = Some("a thread stopped before it was ready".into()),
        }
    }
    let schedule = failure.is_none().then(|| {
        let start_us = clock.now_us() + 100_000;
        let from_us = start_us + (args.warmup * 1e6) as u64;
        Schedule { start_us, from_us, to_us: from_us + (args.duration * 1e6) as u64, rate: args.rate, total, senders }
    });
    for start in starts {
        let _ = start.send(schedule);
    }
    let mut cpu = serde_json::Value::Null;
    let mut rss = (None, None);
    if let Some(schedule) = schedule {
        eprintln!(
            "[parley-bench] sending {}/s for {}+{} s ({} messages, {} senders)",
            args.rate, args.warmup, args.duration, total, senders
        );
        clock.sleep_until(schedule.from_us);
        let a = crate::usage::snapshot(&args.server_pid);
        clock.sleep_until(schedule.to_us);
        let b = crate::usage::snapshot(&args.server_pid);
        cpu = crate::usage::cpu_report(&a, &b);
        rss = (crate::usage::sum(&args.server_pid, crate::usage::rss_kb), crate::usage::rss_kb("self"));
        eprintln!("[parley-bench] schedule done; draining (at most {} s)", args.drain);
    }
    let mut tally = Tally::default();
    for handle in handles {
        match handle.join() {
            Ok(Ok(part)) => tally.merge(part),
            Ok(Err(err)) => failure = failure.or(Some(err)),
            Err(_) => failure = failure.or(Some("a thread panicked".into())),
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(Outcome { tally, cpu, server_rss_kb: rss.0, loadgen_rss_kb: rss.1 }),
    }
}

struct ThreadPlan {
    members: Vec<Member>,
    /// One per node: member i connects to `ws_bases[i % len]`.
    ws_bases: Vec<String>,
    concurrency: usize,
    body_size: usize,
    run_id: String,
    drain_us: u64,
    clock: Clock,
    total: u64,
    ready: mpsc::Sender<Result<(), String>>,
    start: oneshot::Receiver<Option<Schedule>>,
}

async fn thread_main(plan: ThreadPlan) -> Result<Tally, String> {
    let client = crate::setup::client();
    let ws_bases = &plan.ws_bases;
    let client = &client;
    let opened: Vec<Result<(Socket, String), String>> = stream::iter(plan.members.iter().enumerate())
        .map(|(i, m)| socket::connect(client, &ws_bases[i % ws_bases.len()], &m.user.token))
        .buffered(plan.concurrency.max(1))
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(opened.len());
    let mut failures = BTreeMap::<String, u64>::new();
    for result in opened {
        match result {
            Ok(pair) => sockets.push(pair),
            Err(err) => *failures.entry(socket::error_key(&err)).or_default() += 1,
        }
    }
    if !failures.is_empty() {
        let err = format!("connect failed for {} clients: {failures:?}", failures.values().sum::<u64>());
        let _ = plan.ready.send(Err(err.clone()));
        return Err(err);
    }
    let _ = plan.ready.send(Ok(()));
    let Ok(Some(schedule)) = plan.start.await else {
        return Err("stopped before the start".into());
    };

    let clock = plan.clock;
    let state = Rc::new(RefCell::new(State {
        schedule,
        clock,
        run_id: plan.run_id.clone(),
        recs: vec![Rec::default(); usize::try_from(plan.total).unwrap_or(0)],
        complete: 0,
        tally: Tally::default(),
    }));
    let mut mine = 0u64;
    let pad: Rc<str> = "x".repeat(plan.body_size).into();
    for (member, (socket, user_id)) in plan.members.into_iter().zip(sockets) {
        let (sink, stream) = socket.split();
        let (pong_tx, pong_rx) = local::unbounded_channel();
        let alive = Rc::new(Cell::new(true));
        actix_web::rt::spawn(reader(stream, pong_tx, user_id, state.clone(), alive.clone()));
        if let Some(sends) = &member.sends {
            mine += schedule.count_for(sends.first);
        }
        let writer = Writer {
            sink,
            sends: member.sends,
            state: state.clone(),
            alive,
            pad: pad.clone(),
            body_size: plan.body_size,
            run_id: plan.run_id.clone(),
        };
        actix_web::rt::spawn(writer.run(pong_rx));
    }

    // Drain: until every message is answered and every acked one delivered, or the deadline.
    let deadline = schedule.to_us + plan.drain_us;
    let tick = std::time::Duration::from_millis(20);
    loop {
        tokio::time::sleep(tick).await;
        let st = state.borrow();
        let t = &st.tally;
        let done = t.offered == mine && t.acked + t.refused == t.offered && st.complete == t.acked;
        if done || (clock.now_us() >= deadline && t.offered == mine) {
            break;
        }
    }
    // Judge "lost" only for what was acked by now, after one more second for its deliveries.
    // The answers count as they were at the end of the drain.
    let (incomplete, unacked, acked, refused, errors) = {
        let st = state.borrow();
        let incomplete: Vec<usize> =
            st.recs.iter().enumerate().filter(|(_, r)| r.acked && r.deliveries < r.expected).map(|(i, _)| i).collect();
        let unacked = st.recs.iter().filter(|r| r.offered && !r.acked && !r.refused).count() as u64;
        (incomplete, unacked, st.tally.acked, st.tally.refused, st.tally.errors.clone())
    };
    if !incomplete.is_empty() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let mut st = state.borrow_mut();
    let lost = incomplete.iter().filter(|&&i| st.recs[i].deliveries < st.recs[i].expected).count() as u64;
    let mut tally = std::mem::take(&mut st.tally);
    tally.lost = lost;
    tally.unacked = unacked;
    (tally.acked, tally.refused, tally.errors) = (acked, refused, errors);
    Ok(tally)
}
