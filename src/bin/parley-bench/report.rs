//! The results: one JSON object (the last line on stdout, with the field names of the kit's
//! `load.js` where they mean the same, so figures compare side by side) and a table for people
//! on stderr.

use serde_json::{Value, json};

use crate::args::Args;
use crate::connections::Held;
use crate::run::Outcome;
use crate::usage::mb;

/// `{n, p50, p90, p99, p999, max}` in milliseconds (two decimals) of samples in microseconds.
pub fn percentiles(samples: &mut [u32]) -> Value {
    samples.sort_unstable();
    let n = samples.len();
    let ms = |us: u32| (f64::from(us) / 10.0).round() / 100.0;
    let at = |p: f64| (n > 0).then(|| ms(samples[((p * n as f64) as usize).min(n - 1)]));
    json!({
        "n": n,
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": samples.last().map(|&us| ms(us)),
    })
}

pub fn messages(args: &Args, conversations: usize, outcome: Outcome) -> Value {
    let Outcome { tally: mut t, cpu, server_rss_kb, loadgen_rss_kb } = outcome;
    let per_s = |n: u64| (n as f64 / args.duration).round();
    json!({
        "mode": "messages",
        "target": "proto",
        "tool": "parley-bench",
        "label": args.label,
        "url": args.url,
        "users": args.users,
        "conversations": conversations,
        "group_size": args.group_size,
        "body_size": args.body_size,
        "threads": args.threads,
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "drain_s": args.drain,
        "sent": t.offered,
        "acked": t.acked,
        "refused": t.refused,
        "acked_rate": per_s(t.acks_measured),
        "delivered_rate": per_s(t.news_measured),
        "ack_ms": percentiles(&mut t.ack_lat),
        "delivery_ms": percentiles(&mut t.delivery_lat),
        "errors": t.errors.values().sum::<u64>(),
        "error_codes": t.errors,
        "disconnects": t.disconnects,
        "disconnect_codes": t.disconnect_codes,
        "unacked": t.unacked,
        "lost": t.lost,
        "order_violations": t.order_violations,
        "send_lag_ms": percentiles(&mut t.send_lag),
        "cpu": cpu,
        "server_rss_mb": mb(server_rss_kb),
        "loadgen_rss_mb": mb(loadgen_rss_kb),
    })
}

pub fn connections(args: &Args, held: &Held) -> Value {
    let per_conn = match (held.server_rss_before_kb, held.server_rss_after_kb) {
        (Some(a), Some(b)) if held.connected > 0 => {
            Some(((b as f64 - a as f64) / held.connected as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    };
    json!({
        "mode": "connections",
        "target": "proto",
        "tool": "parley-bench",
        "label": args.label,
        "url": args.url,
        "users": args.connections,
        "connected": held.connected,
        "failed": held.failed,
        "connect_errors": held.connect_errors,
        "connect_s": (held.connect_s * 10.0).round() / 10.0,
        "connect_rate": if held.connect_s > 0.0 { (held.connected as f64 / held.connect_s).round() } else { 0.0 },
        "held_s": args.hold,
        "disconnects_while_held": held.disconnects_while_held,
        "server_rss_before_mb": mb(held.server_rss_before_kb),
        "server_rss_after_mb": mb(held.server_rss_after_kb),
        "rss_per_conn_kb": per_conn,
        "loadgen_rss_mb": mb(held.loadgen_rss_kb),
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table for people, on stderr.
pub fn table(r: &Value) {
    let line = |name: &str, value: String| eprintln!("  {name:<24} {value}");
    eprintln!();
    if r["mode"] == "connections" {
        eprintln!("parley-bench: {} connections to {}", show(&r["users"]), show(&r["url"]));
        for key in ["connected", "failed", "connect_errors", "connect_s", "connect_rate", "held_s"] {
            line(key, show(&r[key]));
        }
        line("drops while held", show(&r["disconnects_while_held"]));
        line("server RSS before (MB)", show(&r["server_rss_before_mb"]));
        line("server RSS after (MB)", show(&r["server_rss_after_mb"]));
        line("server KB / connection", show(&r["rss_per_conn_kb"]));
        line("generator RSS (MB)", show(&r["loadgen_rss_mb"]));
        eprintln!();
        return;
    }
    if r["mode"] == "files" {
        eprintln!("parley-bench: {} files of {} bytes at once", show(&r["uploads_at_once"]), show(&r["file_bytes"]));
        line("upload (MiB/s)", show(&r["upload_mib_per_s"]));
        line("download (MiB/s)", show(&r["download_mib_per_s"]));
        let rss = &r["server_rss_mb"];
        line(
            "server RSS (MB)",
            format!("before {}  peak {}  after {}", show(&rss["before"]), show(&rss["peak"]), show(&rss["after"])),
        );
        eprintln!();
        return;
    }
    eprintln!(
        "parley-bench: {} users, {} conversations of {}, {} msg/s for {} s (+{} s warm-up) at {}",
        show(&r["users"]),
        show(&r["conversations"]),
        show(&r["group_size"]),
        show(&r["offered_rate"]),
        show(&r["duration_s"]),
        show(&r["warmup_s"]),
        show(&r["url"])
    );
    line(
        "rates (msg/s)",
        format!(
            "offered {}  acked {}  delivered {} (echoes included)",
            show(&r["offered_rate"]),
            show(&r["acked_rate"]),
            show(&r["delivered_rate"])
        ),
    );
    line(
        "messages",
        format!(
            "sent {}  acked {}  refused {}  unacked {}  lost {}",
            show(&r["sent"]),
            show(&r["acked"]),
            show(&r["refused"]),
            show(&r["unacked"]),
            show(&r["lost"])
        ),
    );
    eprintln!("  {:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}", "latency (ms)", "n", "p50", "p90", "p99", "p99.9", "max");
    for (name, key) in [("ack", "ack_ms"), ("delivery", "delivery_ms"), ("send lag (generator)", "send_lag_ms")] {
        let p = &r[key];
        eprintln!(
            "  {name:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            show(&p["n"]),
            show(&p["p50"]),
            show(&p["p90"]),
            show(&p["p99"]),
            show(&p["p999"]),
            show(&p["max"])
        );
    }
    line("errors", format!("{} {}", show(&r["errors"]), show(&r["error_codes"])));
    line("disconnects", format!("{} {}", show(&r["disconnects"]), show(&r["disconnect_codes"])));
    line("order violations", show(&r["order_violations"]));
    let cpu = &r["cpu"];
    line(
        "CPU (% of one core)",
        format!(
            "server {}  generator {}  postgres {}  other {}  (machine busy {}% of {} cores)",
            show(&cpu["server_pct"]),
            show(&cpu["loadgen_pct"]),
            show(&cpu["postgres_pct"]),
            show(&cpu["other_pct"]),
            show(&cpu["system_busy_pct"]),
            show(&cpu["cores"])
        ),
    );
    line("RSS (MB)", format!("server {}  generator {}", show(&r["server_rss_mb"]), show(&r["loadgen_rss_mb"])));
    eprintln!();
}
