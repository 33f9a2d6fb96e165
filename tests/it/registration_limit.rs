//! Registrations per address per hour (PARLEY_REGISTRATIONS_PER_HOUR): past the limit,
//! `rate_limited` with `retry_after_ms`, counted in /metrics.

use serde_json::json;

use crate::common::*;

backends!(an_address_registers_a_few_accounts_per_hour);

async fn an_address_registers_a_few_accounts_per_hour(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.accounts.registrations_per_hour = 2).await;
    let before = metric(&server.metrics().await, "parley_refused_total{limit=\"registrations_per_address\"}");
    server.user("first").await;
    server.user("second").await;
    let (status, body) =
        server.post(None, "/api/auth/register", json!({"username": "third", "password": PASSWORD})).await;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("rate_limited")), "{body}");
    let wait = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 3_000_000 && wait <= 3_600_000, "about an hour: {wait}");
    let counted = metric(&server.metrics().await, "parley_refused_total{limit=\"registrations_per_address\"}") - before;
    assert!(counted >= 1.0, "counted in /metrics: {counted}");
    // The refused account was not made.
    let got = server.post(None, "/api/auth/login", json!({"username": "third", "password": PASSWORD})).await;
    assert_error(&got, 401, "unauthorized");
    server.stop().await;
}
