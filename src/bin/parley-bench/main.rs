//! `parley-bench`: an open-loop load generator for Parley and any server of its protocol
//! (docs/PROTOCOL.md), for us
//! and for operators sizing a deployment (README, "Measuring: parley-bench").
//!
//! # Layout
//! - `args`: the command line.
//! - `setup`: users (built-in accounts or signed tokens) and conversations, over REST.
//! - `socket`: WebSocket connections and the few frame fields the bench reads.
//! - `clock`: the shared monotonic clock and the send schedule.
//! - `run`: the message mode (open loop, per-thread runtimes, drain).
//! - `tally`: its accounting: what each message became, acks, deliveries, latencies.
//! - `traffic`: one connection of the message mode: its reader and its writer.
//! - `connections`: the connection mode (idle sockets held open).
//! - `files`: the files mode (uploads and downloads at once, memory and throughput).
//! - `usage`: CPU and memory from /proc, the open-files limit.
//! - `report`: the JSON line (stdout) and the table (stderr).

mod args;
mod clock;
mod connections;
mod files;
mod report;
mod run;
mod setup;
mod socket;
mod tally;
mod traffic;
mod usage;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::Args;
use crate::setup::Identities;

fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args) {
        Ok(result) => {
            report::table(&result);
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("parley-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<serde_json::Value, String> {
    let conversations = args.conversations()?;
    let nofile = usage::raise_nofile();
    let wanted = args.connections.unwrap_or(args.users);
    if (wanted as u64) + 64 > nofile {
        eprintln!("[parley-bench] warning: {wanted} connections but only {nofile} open files allowed");
    }
    let per_sender = args.rate / (conversations * usize::from(args.group_size)).max(1) as f64;
    if args.connections.is_none() && per_sender > 20.0 {
        eprintln!(
            "[parley-bench] note: {per_sender:.1} msg/s per user; the server's defaults are 20/s per user \
             (PARLEY_RATE_PER_SEC) and 100 frames/s per connection (PARLEY_MAX_FRAMES_PER_SEC)"
        );
    }
    let base = args.http_base().to_string();
    let prefix =
        args.user_prefix.clone().unwrap_or_else(|| format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    // Tokens outlive the run with a margin.
    let lifetime = Duration::from_secs_f64(3600.0 + args.warmup + args.duration + args.drain + args.hold);

    if args.uploads.is_some() {
        let how = match &args.token_secret {
            Some(secret) => Identities::Signed { secret, touch: true },
            None => Identities::Accounts { prefix: &prefix },
        };
        return files::run(args, &base, &how, lifetime);
    }

    if let Some(n) = args.connections {
        let how = match &args.token_secret {
            Some(secret) => Identities::Signed { secret, touch: false },
            None => {
                eprintln!(
                    "[parley-bench] registering {n} accounts (Argon2 on the server: --token-secret is much faster)"
                );
                Identities::Accounts { prefix: &prefix }
            }
        };
        let users = actix_web::rt::System::new()
            .block_on(async { setup::users(&setup::client(), &base, &how, n, 8, lifetime).await })?;
        let held = connections::hold(args, users)?;
        return Ok(report::connections(args, &held));
    }

    let how = match &args.token_secret {
        Some(secret) => Identities::Signed { secret, touch: true },
        None => Identities::Accounts { prefix: &prefix },
    };
    eprintln!("[parley-bench] setting up {} users and {conversations} conversations", args.users);
    let g = usize::from(args.group_size);
    let (users, convs) = actix_web::rt::System::new().block_on(async {
        let client = setup::client();
        // Argon2 makes registration slow on the server: a few at a time, signed tokens more.
        let concurrency = if args.token_secret.is_some() { 16 } else { 4 };
        let users = setup::users(&client, &base, &how, args.users, concurrency, lifetime).await?;
        let convs = setup::conversations(&client, &base, &users, conversations, g, 16).await?;
        Ok::<_, String>((users, convs))
    })?;
    eprintln!("[parley-bench] connecting {} clients", users.len());
    let outcome = run::run(args, users, convs)?;
    Ok(report::messages(args, conversations, outcome))
}
