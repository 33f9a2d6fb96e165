//! The scenes most tests open with, built once: Alice and Bob on a fresh server with their
//! direct conversation ([`Pair`]), with a socket each or not; and many such pairs at once
//! ([`pairs`], [`send_all`]) for the tests of concurrency.

use serde_json::json;

use super::{Backend, TestServer, TestUser, Ws};

/// Alice and Bob on a fresh server, and their direct conversation.
pub struct Pair {
    pub server: TestServer,
    pub alice: TestUser,
    pub bob: TestUser,
    pub conversation: String,
}

impl Pair {
    pub async fn start(backend: Backend) -> Pair {
        Self::start_with(backend, |_| {}).await
    }

    /// The same, on a server whose configuration `tune` adjusted.
    pub async fn start_with(backend: Backend, tune: impl FnOnce(&mut parley::config::Config)) -> Pair {
        let server = TestServer::start_with(backend, tune).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let conversation = server.direct(&alice, &bob).await;
        Pair { server, alice, bob, conversation }
    }

    /// The pair, and then a socket for Alice and one for Bob.
    pub async fn connected(backend: Backend) -> (Pair, Ws, Ws) {
        Self::connected_with(backend, |_| {}).await
    }

    /// [`Pair::connected`] on a server whose configuration `tune` adjusted.
    pub async fn connected_with(backend: Backend, tune: impl FnOnce(&mut parley::config::Config)) -> (Pair, Ws, Ws) {
        let pair = Self::start_with(backend, tune).await;
        let a = pair.server.ws(&pair.alice).await;
        let b = pair.server.ws(&pair.bob).await;
        (pair, a, b)
    }

    /// Alice and Bob online first, then their conversation made: both sockets are told of it.
    pub async fn online_first(backend: Backend) -> (Pair, Ws, Ws) {
        let server = TestServer::start(backend).await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let a = server.ws(&alice).await;
        let b = server.ws(&bob).await;
        let conversation = server.direct(&alice, &bob).await;
        (Pair { server, alice, bob, conversation }, a, b)
    }
}

/// Direct conversations of users `2i` and `2i + 1`, with a socket per user.
pub async fn pairs(server: &TestServer, count: usize) -> Vec<(String, Vec<(TestUser, Ws)>)> {
    let mut pairs = Vec::new();
    for i in 0..count {
        let a = server.user(&format!("ann{i}")).await;
        let b = server.user(&format!("bob{i}")).await;
        let conversation = server.direct(&a, &b).await;
        let (wa, wb) = (server.ws(&a).await, server.ws(&b).await);
        pairs.push((conversation, vec![(a, wa), (b, wb)]));
    }
    pairs
}

/// Each user sends `each` messages ("m0", "m1", … with client_ids "USERNAME-k") without waiting
/// for acks; per user, in the order of `pairs`, the (ref, client_id) of each send.
pub async fn send_all(pairs: &mut [(String, Vec<(TestUser, Ws)>)], each: usize) -> Vec<Vec<(String, String)>> {
    let mut refs = Vec::new();
    for (conversation, users) in pairs.iter_mut() {
        for (user, ws) in users.iter_mut() {
            let mut mine = Vec::new();
            for k in 0..each {
                let client_id = format!("{}-{k}", user.username);
                let data = json!({"conversation_id": conversation, "body": format!("m{k}"), "client_id": client_id});
                mine.push((ws.command("message:send", data).await, client_id));
            }
            refs.push(mine);
        }
    }
    refs
}
