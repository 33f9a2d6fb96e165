//! The files mode (`--uploads N`): N uploads of `--file-size` bytes at once into one
//! conversation, then N downloads of them at once through their signed links, `--rounds` times;
//! reports the throughput of each and the server's resident memory (sampled every 10 ms) before,
//! at its peak, and after. The files are incompressible PDFs: what is measured is streaming, not
//! image decoding (one thumbnail at a time, `PARLEY_IMAGE_WORKERS`, adds one image's pixels).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use awc::Client;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::args::Args;
use crate::setup::{self, BenchUser, Identities};
use crate::usage;

/// What one round measured.
struct Round {
    upload_secs: f64,
    download_secs: f64,
}

pub fn run(args: &Args, base: &str, how: &Identities<'_>, lifetime: Duration) -> Result<Value, String> {
    let n = args.uploads.unwrap_or(0).max(1);
    let size = args.file_size;
    let body = Arc::new(multipart(size));
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pids, peak, sampling) = (args.server_pid.clone(), peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = usage::sum(&pids, usage::rss_kb) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let before = usage::sum(&args.server_pid, usage::rss_kb);
    let rounds = actix_web::rt::System::new().block_on(async {
        let client = Client::builder().timeout(Duration::from_secs(300)).finish();
        let users = setup::users(&client, base, how, 2, 2, lifetime).await?;
        let conversation = setup::conversations(&client, base, &users, 1, 2, 1).await?.remove(0).id;
        let mut rounds = Vec::new();
        for _ in 0..args.rounds.max(1) {
            rounds.push(round(&client, base, &users[0], &conversation, n, &body).await?);
        }
        Ok::<_, String>(rounds)
    })?;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let after = usage::sum(&args.server_pid, usage::rss_kb);
    let bytes = (n * size) as f64;
    let mbps = |secs: f64| (bytes / secs / (1024.0 * 1024.0) * 10.0).round() / 10.0;
    let best = |pick: fn(&Round) -> f64| rounds.iter().map(pick).fold(f64::INFINITY, f64::min);
    Ok(json!({
        "mode": "files",
        "label": args.label,
        "uploads_at_once": n,
        "file_bytes": size,
        "rounds": rounds.len(),
        "upload_mib_per_s": mbps(best(|r| r.upload_secs)),
        "download_mib_per_s": mbps(best(|r| r.download_secs)),
        "server_rss_mb": {
            "before": usage::mb(before),
            "peak": usage::mb((peak.load(Ordering::Relaxed) > 0).then(|| peak.load(Ordering::Relaxed))),
            "after": usage::mb(after),
        },
    }))
}

async fn round(
    client: &Client,
    base: &str,
    user: &BenchUser,
    conversation: &str,
    n: usize,
    body: &Arc<Vec<u8>>,
) -> Result<Round, String> {
    let started = Instant::now();
    let uploads = (0..n).map(|_| async {
        let mut response = client
            .post(format!("{base}/api/conversations/{conversation}/attachments"))
            .bearer_auth(&user.token)
            .insert_header(("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}")))
            .send_body(body.as_ref().clone())
            .await
            .map_err(|err| format!("upload: {err}"))?;
        let answer: Value = response.json().limit(1 << 20).await.map_err(|err| format!("upload answer: {err}"))?;
        if response.status().as_u16() != 201 {
            return Err(format!("upload: HTTP {} {answer}", response.status()));
        }
        Ok::<_, String>((
            answer["id"].as_str().unwrap_or_default().to_string(),
            answer["url"].as_str().unwrap_or_default().to_string(),
        ))
    });
    let uploaded: Vec<(String, String)> = join_all(uploads).await.into_iter().collect::<Result<_, _>>()?;
    let upload_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let downloads = uploaded.iter().map(|(_, url)| async move {
        let mut response = client.get(format!("{base}{url}")).send().await.map_err(|err| format!("download: {err}"))?;
        let mut received = 0usize;
        use futures_util::StreamExt;
        while let Some(chunk) = response.next().await {
            received += chunk.map_err(|err| format!("download: {err}"))?.len();
        }
        Ok::<_, String>(received)
    });
    let received: usize = join_all(downloads).await.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().sum();
    let download_secs = started.elapsed().as_secs_f64();
    if received != n * (body.len() - overhead()) {
        return Err(format!("downloaded {received} bytes, uploaded {}", n * (body.len() - overhead())));
    }
    // Unsent uploads count in the quota: withdrawn so that rounds do not fill it.
    for (id, _) in &uploaded {
        let _ = client.delete(format!("{base}/api/attachments/{id}")).bearer_auth(&user.token).send().await;
    }
    Ok(Round { upload_secs, download_secs })
}

const BOUNDARY: &str = "parley-bench-boundary";

fn head() -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
}

fn tail() -> String {
    format!("\r\n--{BOUNDARY}--\r\n")
}

fn overhead() -> usize {
    head().len() + tail().len()
}

/// A multipart body holding one incompressible PDF of `size` bytes.
fn multipart(size: usize) -> Vec<u8> {
    let mut body = head().into_bytes();
    let mut file = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while file.len() < size {
        // xorshift: cheap bytes that no compression or deduplication helps with.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.extend_from_slice(&state.to_le_bytes());
    }
    file.truncate(size);
    body.extend_from_slice(&file);
    body.extend_from_slice(tail().as_bytes());
    body
}
