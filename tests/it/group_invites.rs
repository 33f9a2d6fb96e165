//! How many groups one user may add people to within a minute: past the limit, creating a group
//! with members or adding someone to another group is 429 `rate_limited`; filling a group
//! already counted is not limited, and other users have their own count.

use serde_json::json;

use crate::common::*;

backends!(adding_people_to_too_many_groups_is_rate_limited);

async fn adding_people_to_too_many_groups_is_rate_limited(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.exposure.group_invites_per_minute = 3).await;
    let mallory = server.user("mallory").await;
    let victim = server.user("victim").await;
    let friends = [server.user("fay").await, server.user("gus").await, server.user("hal").await];

    // Two groups made with the victim in them, and one made empty then filled, person by person.
    server.group(&mallory, "one", &[&victim]).await;
    server.group(&mallory, "two", &[&victim]).await;
    let third = server.group(&mallory, "three", &[]).await;
    for user in [&victim, &friends[0], &friends[1], &friends[2]] {
        let (status, body) = server
            .post(Some(&mallory), &format!("/api/conversations/{third}/members"), json!({"user_id": user.id}))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // A fourth group, either way: refused, with the protocol's shape.
    let made = server
        .post(
            Some(&mallory),
            "/api/conversations",
            json!({"kind": "group", "title": "four", "member_ids": [victim.id]}),
        )
        .await;
    assert_eq!((made.0, code(&made.1)), (429, "rate_limited"), "{}", made.1);
    assert!(made.1["error"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 60_000), "{}", made.1);
    let empty = server.group(&mallory, "five", &[]).await;
    let added = server
        .post(Some(&mallory), &format!("/api/conversations/{empty}/members"), json!({"user_id": victim.id}))
        .await;
    assert_eq!((added.0, code(&added.1)), (429, "rate_limited"), "{}", added.1);
    let (_, list) = server.get(Some(&victim), "/api/conversations").await;
    assert_eq!(list["conversations"].as_array().map(Vec::len), Some(3), "{list}");

    // Someone else is not limited by Mallory's count.
    server.group(&friends[0], "ours", &[&victim]).await;
    assert!(metric(&server.metrics().await, "parley_refused_total{limit=\"group_invites\"}") >= 1.0);
    server.stop().await;
}
