//! CPU and memory of the server, of PostgreSQL, of the generator itself and of the machine,
//! read from /proc (Linux), and the open-files limit.

use std::time::Instant;

use serde_json::{Value, json};

/// Raises the soft RLIMIT_NOFILE to the hard limit (one file per connection); returns it.
pub fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass, which lives here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The sum of `read` over the processes `pids` (the nodes of a cluster); `None` without pids or
/// when one cannot be read.
pub fn sum(pids: &[i32], read: fn(&str) -> Option<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| read(&pid.to_string())).sum()
}

/// Resident memory of a process, in KiB.
pub fn rss_kb(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The ticks of every `postgres` process (its backends live as long as the pool's connections,
/// so sums at two moments compare).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut sum = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            && comm.trim_end() == "postgres"
        {
            sum += cpu_ticks(pid).unwrap_or(0);
        }
    }
    sum
}

/// The machine's counters from the first line of /proc/stat: (total, idle, iowait).
fn system_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total = values.iter().take(8).sum();
    (total, values.get(3).copied().unwrap_or(0), values.get(4).copied().unwrap_or(0))
}

/// The counters at one moment.
pub struct CpuSnapshot {
    at: Instant,
    own: u64,
    server: Option<u64>,
    postgres: u64,
    system: (u64, u64, u64),
}

pub fn snapshot(server_pids: &[i32]) -> CpuSnapshot {
    CpuSnapshot {
        at: Instant::now(),
        own: cpu_ticks("self").unwrap_or(0),
        server: sum(server_pids, cpu_ticks),
        postgres: postgres_ticks(),
        system: system_ticks(),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// CPU between two snapshots, the kit's `cpu` object: `loadgen_pct`, `server_pct`,
/// `postgres_pct` and `other_pct` are % of ONE core (200 = both of two cores);
/// `system_busy_pct` and `iowait_pct` are % of the whole machine.
pub fn cpu_report(a: &CpuSnapshot, b: &CpuSnapshot) -> Value {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
    let pct = |ticks: u64| ticks as f64 / ticks_per_sec() / wall * 100.0;
    let own = pct(b.own.saturating_sub(a.own));
    let server = a.server.zip(b.server).map(|(x, y)| pct(y.saturating_sub(x)));
    let postgres = pct(b.postgres.saturating_sub(a.postgres));
    let total = b.system.0.saturating_sub(a.system.0).max(1) as f64;
    let idle = b.system.1.saturating_sub(a.system.1) as f64;
    let iowait = b.system.2.saturating_sub(a.system.2) as f64;
    let busy = 100.0 * (total - idle - iowait) / total;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    json!({
        "loadgen_pct": round1(own),
        "server_pct": server.map(round1),
        "postgres_pct": round1(postgres),
        "other_pct": round1((busy * cores as f64 - own - server.unwrap_or(0.0) - postgres).max(0.0)),
        "system_busy_pct": round1(busy),
        "iowait_pct": round1(100.0 * iowait / total),
        "cores": cores,
    })
}

/// KiB as MiB with one decimal.
pub fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|kb| round1(kb as f64 / 1024.0))
}
