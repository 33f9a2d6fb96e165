//! The list of a user's conversations: newest activity first, paged with a cursor; bad cursors
//! and limits are refused.

use serde_json::{Value, json};

use crate::common::*;

backends!(the_list_is_newest_activity_first_and_pages_with_a_cursor, the_list_refuses_bad_cursors_and_limits,);

/// Alice has three conversations: the list shows the most recently active first, a new message
/// moves its conversation to the top, `total_unread` adds up, and `limit=1` pages through all
/// three with the `next` cursor.
async fn the_list_is_newest_activity_first_and_pages_with_a_cursor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let first = server.direct(&alice, &bob).await;
    let second = server.direct(&alice, &carol).await;
    let third = server.group(&alice, "all of us", &[&bob, &carol, &dave]).await;

    let (status, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(listed_ids(&list), [third.clone(), second.clone(), first.clone()]);
    assert_eq!(list["total_unread"], 0);
    assert_eq!(list["next"], Value::Null, "everything fits in one page");

    // Bob writes in the oldest one: it moves to the top, with one unread for Alice.
    let (status, sent) =
        server.post(Some(&bob), &format!("/api/conversations/{first}/messages"), json!({"body": "still there?"})).await;
    assert_eq!(status, 201, "{sent}");
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    assert_eq!(listed_ids(&list), [first.clone(), third.clone(), second.clone()]);
    assert_eq!(list["total_unread"], 1);
    assert_eq!(list["conversations"][0]["unread_count"], 1);
    assert_eq!(list["conversations"][0]["last_seq"], 1);
    assert_eq!(list["conversations"][0]["last_message"]["body"], "still there?");
    assert_eq!(list["conversations"][0]["last_message"]["seq"], 1);

    // Carol writes twice in the second.
    for body in ["one", "two"] {
        let (status, _) =
            server.post(Some(&carol), &format!("/api/conversations/{second}/messages"), json!({"body": body})).await;
        assert_eq!(status, 201);
    }
    let (_, list) = server.get(Some(&alice), "/api/conversations").await;
    let expected = [second.clone(), first.clone(), third.clone()];
    assert_eq!(listed_ids(&list), expected);
    assert_eq!(list["total_unread"], 3);
    assert_eq!(list["conversations"][0]["unread_count"], 2);

    // Page by page, one at a time: three pages, the last one without a next cursor.
    let mut paged = Vec::new();
    let mut path = "/api/conversations?limit=1".to_string();
    for page in 1..=3 {
        let (status, body) = server.get(Some(&alice), &path).await;
        assert_eq!(status, 200, "page {page}: {body}");
        assert_eq!(body["conversations"].as_array().map(Vec::len), Some(1), "page {page}: {body}");
        assert_eq!(body["total_unread"], 3, "total_unread counts every conversation, not the page");
        paged.extend(listed_ids(&body));
        if page < 3 {
            let next = body["next"].as_str().unwrap_or_else(|| panic!("page {page} has a next cursor: {body}"));
            path = format!("/api/conversations?limit=1&before={next}");
        } else {
            assert_eq!(body["next"], Value::Null, "the last page has no next: {body}");
        }
    }
    assert_eq!(paged, expected);

    // Two at a time: two pages.
    let (_, page) = server.get(Some(&alice), "/api/conversations?limit=2").await;
    assert_eq!(listed_ids(&page), expected[..2]);
    let next = page["next"].as_str().expect("a next cursor").to_string();
    let (_, page) = server.get(Some(&alice), &format!("/api/conversations?limit=2&before={next}")).await;
    assert_eq!(listed_ids(&page), expected[2..]);
    assert_eq!(page["next"], Value::Null);

    // Dave sees only the group.
    let (_, list) = server.get(Some(&dave), "/api/conversations").await;
    assert_eq!(listed_ids(&list), [third]);
    server.stop().await;
}

/// A cursor that did not come from `next`, and a limit of 0 or above the maximum, are refused.
async fn the_list_refuses_bad_cursors_and_limits(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.direct(&alice, &bob).await;
    let max = server.config.limits.max_batch;

    let bad = [
        "/api/conversations?before=nonsense".to_string(),
        "/api/conversations?before=123_not-a-uuid".to_string(),
        format!("/api/conversations?before=soon_{}", uuid::Uuid::new_v4()),
        "/api/conversations?limit=0".to_string(),
        "/api/conversations?limit=-1".to_string(),
        format!("/api/conversations?limit={}", max + 1),
        "/api/conversations?limit=many".to_string(),
    ];
    for path in &bad {
        let (status, body) = server.get(Some(&alice), path).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{path}: {body}");
    }
    let (status, body) = server.get(Some(&alice), &format!("/api/conversations?limit={max}")).await;
    assert_eq!(status, 200, "limit={max} is the maximum: {body}");
    assert_eq!(body["conversations"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}
