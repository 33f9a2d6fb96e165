//! Socket.IO across nodes: Alice's socket.io-client on node A (polling, then WebSocket), Bob's
//! on node B over long-polling only. Everything of `tests/it/socketio.rs` holds: acks after
//! commit, order, typing, presence, and a reconnect that syncs with nothing lost. (Each client
//! stays on its node, as behind a load balancer with sticky sessions for `/socket.io/`:
//! `deploy/nginx.conf`.)

use serde_json::json;

use crate::common::cluster::*;
use crate::socketio::{check_history, drive, socket_io_available};

#[actix_web::test]
async fn socket_io_clients_on_two_nodes_chat_as_on_one() {
    if !socket_io_available() {
        return;
    }
    let Some(cluster) = Cluster::start(2, |_| {}).await else { return };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = node_a.user("alice").await;
    let bob = node_a.user("bob").await;
    let conversation = node_a.direct(&alice, &bob).await;
    drive(json!({
        "base": node_a.base, "bobBase": node_b.base,
        "alice": alice.token, "bob": bob.token, "conversation": conversation,
    }))
    .await;
    check_history(&node_b.history(&bob, &conversation).await);
    cluster.stop().await;
}
