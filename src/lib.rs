//! # Parley
//!
//! A self-hosted real-time chat server: 1:1 and group conversations over WebSocket and REST,
//! on actix actors, with SQLite (embedded, the default) or PostgreSQL underneath. The wire
//! contract is `docs/PROTOCOL.md`; the shape of the code is `docs/ARCHITECTURE.md`.
//!
//! # Layout
//!
//! From the bottom layer up; a module imports only from the layers below it.
//!
//! - [`config`]: every setting, from flags and `PARLEY_*` variables.
//! - [`error`]: the one error type, and how it maps to HTTP statuses and protocol codes.
//! - [`files`]: what an uploaded file is, from its bytes: its type, an image's size and
//!   thumbnail, its metadata stripped, a safe name to serve it under.
//! - [`types`]: typed ids, `Seq` positions and timestamps (diesel types on both backends), and
//!   the `Unread` counts.
//! - [`metrics`]: the names of the Prometheus metrics, and the exporter behind `/metrics`.
//! - [`protocol`]: the wire objects, client commands, server events and frames.
//! - [`store`]: the database behind a small async API; migrations per backend; the group
//!   committer, which commits the sends of many conversations in one transaction (and asks
//!   for cluster-wide rate permits through its `Permits` port).
//! - [`files`]: where attachment files live: a local directory or an S3-compatible store.
//! - [`rate_limit`]: messages per second per user, on this node.
//! - [`slots`]: counted places given back on drop: connections per address, sessions per user
//!   and per address.
//! - [`cluster`]: several nodes on one PostgreSQL: the Redis broker that carries each node's
//!   events to the others, cluster-wide presence and rates. It hands what it receives to the
//!   `cluster::Inbound` port, which the actors implement.
//! - [`actors`]: `WsSession` (one per socket), `ConversationActor` (one per active
//!   conversation, found or started by the `Registry`), `Presence` (one per node: sessions,
//!   online/offline, user-addressed delivery), `ClusterInbox` (the actors' side of the cluster
//!   port), and each session's outgoing queue.
//! - [`auth`]: tokens, passwords, and the `AuthUser` extractor.
//! - [`http`]: the route table and one module per resource; what the server admits from one
//!   client (`admission`, `body_timeout`, `client_ip`, `invitations`); the host's service API
//!   (`service`); Socket.IO over Engine.IO at `/socket.io/` (`socketio`), whose sessions are
//!   `/ws`'s.
//! - [`rules`]: the checks and limits every door applies alike (send, title, group size, page
//!   sizes, what the host gives); [`system_messages`]: what Parley's own system messages say,
//!   in English or French, and the checks on the host's.
//! - [`app`]: the handles that handlers and sessions share (`AppState`).
//! - `src/bin/parley-bench/`: the load generator (a program that prints figures).
//!
//! # Where each command is handled
//!
//! - Every WebSocket command: the `match` in `WsSession::command` (`actors/session.rs`); writes
//!   go on to the conversation's actor (`actors/conversation/`), reads to the store, and
//!   `presence:query` to `actors/presence/query.rs`.
//! - Every REST route: the route table in `http/mod.rs`, one handler module per resource.
//!
//! How a message flows: a client's `message:send` frame (or `POST …/messages`) reaches the
//! conversation's actor, which hands it, with any other sends it has queued, to a lane of the
//! group committer; the lane commits them in one transaction with the sends of other
//! conversations (the database assigns `seq`). The actor then encodes `message:new` once,
//! queues those bytes on every member session's outgoing queue, and only then acknowledges.
//! Reads (history, sync, lists) go to the store directly.

pub mod actors;
pub mod app;
pub mod attachments;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod files;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod rate_limit;
pub mod rules;
pub mod slots;
pub mod store;
pub mod system_messages;
pub mod types;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter, ArbiterHandle};
use actix_web::dev::ServerHandle;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};

use crate::actors::conversation::ConversationDeps;
use crate::actors::inbox::ClusterInbox;
use crate::actors::outgoing::SocketGuard;
use crate::actors::presence::{CloseAll, Presence};
use crate::actors::registry::Registry;
use crate::actors::session::SessionDeps;
use crate::app::AppState;
use crate::attachments::Files;
use crate::auth::{Auth, ClaimNames, Keys, ServiceKeys};
use crate::cluster::Broker;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::admission::{self, Admission};
use crate::http::body_timeout;
use crate::http::client_ip::TrustedProxies;
use crate::http::invitations::GroupInvites;
use crate::http::origin::OriginPolicy;
use crate::http::socketio::SocketIo;
use crate::rate_limit::RateLimiter;
use crate::store::{Committer, CommitterConfig, DatabaseUrl, Permits, Store, redact};
use crate::types::Timestamp;

/// A started server: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    server: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    handle: ServerHandle,
    presence: actix::Addr<Presence>,
    broker: Broker,
    arbiters: Vec<Arbiter>,
}

/// Builds the actor system and the HTTP server on `listener`, and serves until SIGINT or
/// SIGTERM; then stops gracefully.
pub async fn run(listener: TcpListener, config: Config) -> Result<()> {
    let running = start(listener, config).await?;
    let handle = running.handle.clone();
    let presence = running.presence.clone();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        log::info!("shutting down");
        stop_gracefully(&presence, &handle).await;
    });
    running.wait().await
}

/// Builds everything and starts serving in the background (tests call this, on port 0).
pub async fn start(listener: TcpListener, config: Config) -> Result<Running> {
    let url = DatabaseUrl::parse(&config.database_url)?;
    if config.cluster.redis_url.is_some() && matches!(url, DatabaseUrl::Sqlite(_)) {
        return Err(Error::bad_request(
            "PARLEY_REDIS_URL is set but the database is SQLite: several nodes need PostgreSQL \
             (SQLite is for one node; unset PARLEY_REDIS_URL to run alone)",
        ));
    }
    let secret = auth::tokens::resolve_secret(config.jwt_secret.clone(), &url)?;
    let proxies = TrustedProxies::parse(&config.exposure.trusted_proxies)?;
    crate::metrics::handle(); // installed before anything records
    // Every setting is checked before the database is touched (and migrated).
    let node_id = uuid::Uuid::new_v4();
    let broker = Broker::new(&config.cluster, node_id, (config.limits.rate_per_sec, config.limits.rate_burst))?;
    auth::admins::check_settings(&config.admin_users, config.accounts.admin_password_hash.as_deref())?;
    let keys = Keys::new(
        &secret,
        config.jwt_public_key.as_deref(),
        config.token_ttl_secs,
        config.accounts.token_max_lifetime_secs,
        ClaimNames { external_id: config.host.external_id_claim.clone(), name: config.host.name_claim.clone() },
    )?;
    let service_keys = web::Data::new(ServiceKeys::new(&config.host.service_keys)?);
    let policies = config.host.policies();
    log::info!(
        "policies: {policies:?}{}",
        if config.host.embedded() { " (embedded: service keys are set)" } else { "" }
    );
    let store = Store::connect(&url, config.db_pool_size, Duration::from_millis(config.db_timeout_ms)).await?;
    auth::admins::provision(&store, &config.admin_users, config.accounts.admin_password_hash.as_deref()).await?;
    let files = Files::open(&config.files, &url, store.clone())?;
    files::urls::install(&secret, Duration::from_secs(config.files.url_ttl_secs));
    attachments::start_sweeper(files.clone());
    let files = web::Data::new(files);

    let limits = Arc::new(config.limits.clone());
    // Shared actors are started once, here, never inside the HttpServer factory (which runs
    // once per worker).
    let presence = Presence::new(store.clone(), broker.clone(), &limits).start();
    let threads = config.conversation_threads.unwrap_or_else(Config::cores).max(1);
    let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    // SQLite has one writer at a time: more lanes would only wait for its lock.
    let lanes = if matches!(url, DatabaseUrl::Sqlite(_)) { 1 } else { config.commit_lanes.max(1) };
    // Cluster-wide rate permits only with a broker; alone, the node's own limiter is the limit.
    let permits = config.cluster.redis_url.is_some().then(|| Arc::new(broker.clone()) as Arc<dyn Permits>);
    let committer = Committer::start(
        Store::open(&url, lanes, Duration::from_millis(config.db_timeout_ms))?,
        permits,
        CommitterConfig { lanes, max_batch: config.commit_batch.max(1), deadline: limits.send_deadline() },
        &handles,
    );
    let deps = ConversationDeps {
        store: store.clone(),
        committer,
        presence: presence.clone(),
        broker: broker.clone(),
        limits: limits.clone(),
        language: config.host.language,
        gap_wait: config.cluster.redis_url.is_some().then(|| Duration::from_millis(config.cluster.gap_wait_ms)),
    };
    let registry = Registry::new(handles, deps);
    if let Some(after) = config.host.archive_after() {
        let every = Duration::from_secs(config.host.archive_sweep_secs);
        actors::archival::start(store.clone(), registry.clone(), after, every, config.host.archive_batch);
    }
    broker.start(Arc::new(ClusterInbox { registry: registry.clone(), presence: presence.clone() }));
    let running_broker = broker.clone();
    let rate = Arc::new(RateLimiter::new(limits.rate_per_sec, limits.rate_burst));
    let sessions = web::Data::new(SessionDeps {
        store: store.clone(),
        registry: registry.clone(),
        presence: presence.clone(),
        limits: limits.clone(),
        rate: rate.clone(),
        revocation_check: Duration::from_millis(config.accounts.revocation_check_ms.max(1)),
    });
    let state = web::Data::new(AppState {
        store: store.clone(),
        presence: presence.clone(),
        registry,
        limits: limits.clone(),
        rate,
        broker,
        node_id,
        started_at: Timestamp::now(),
        admin_users: config.admin_users.clone(),
        policies,
        language: config.host.language,
        fault_injection: config.fault_injection,
    });
    let origins = web::Data::new(OriginPolicy::new(&config.allowed_origins));
    let auth =
        web::Data::new(Auth::new(keys, store.clone(), config.login_failures, config.accounts.registrations_per_hour));
    let (json, query, path) = http::extractor_configs(&limits);
    let admission = web::Data::new(Admission::new(&config.exposure, proxies.clone()));
    let proxies = web::Data::new(proxies);
    let exposure = web::Data::new(config.exposure.clone());
    let invites = web::Data::new(GroupInvites::new(config.exposure.group_invites_per_minute));
    let connections = admission.clone();
    let socketio = web::Data::new(SocketIo::new(&config.socketio, sessions.clone(), auth.clone(), admission.clone())?);
    // Served beside the route table (not in it): its path is a setting, and it is no REST.
    let socketio_path = format!("{}/", config.socketio.path.trim_end_matches('/'));

    let addr = listener.local_addr().map_err(|err| Error::Internal(format!("listener: {err}")))?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(sessions.clone())
            .app_data(origins.clone())
            .app_data(auth.clone())
            .app_data(json.clone())
            .app_data(query.clone())
            .app_data(path.clone())
            .app_data(admission.clone())
            .app_data(proxies.clone())
            .app_data(exposure.clone())
            .app_data(invites.clone())
            .app_data(files.clone())
            .app_data(service_keys.clone())
            .app_data(socketio.clone())
            .service(web::resource(socketio_path.as_str()).wrap(origins.cors()).to(http::socketio::handle))
            .configure(|cfg| http::routes(cfg, origins.cors()))
            // The last wrapped runs first: a connection over its cap is refused before anything.
            .wrap(from_fn(body_timeout::limit))
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(from_fn(admission::refuse_over_cap))
    })
    .on_connect(move |conn, extensions| {
        ::metrics::counter!(crate::metrics::CONNECTIONS).increment(1);
        if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Ok(peer) = stream.peer_addr() {
                connections.on_connect(peer.ip(), extensions);
            }
            // A reply often follows an event in a second small write; with Nagle's algorithm it
            // would wait for the client's delayed ACK (40 ms on Linux).
            if let Err(err) = stream.set_nodelay(true) {
                log::debug!("cannot set TCP_NODELAY: {err}");
            }
            if let Some(guard) = SocketGuard::of(stream) {
                extensions.insert(guard);
            }
        }
    })
    .workers(config.workers.unwrap_or_else(Config::cores).max(1))
    .backlog(4096)
    .shutdown_timeout(config.shutdown_timeout_secs)
    .disable_signals()
    .listen(listener)
    .map_err(|err| Error::Internal(format!("cannot listen: {err}")))?
    .run();

    log::info!(
        "parley {} listening on http://{addr} ({}: {})",
        env!("CARGO_PKG_VERSION"),
        store.backend_name(),
        match &url {
            DatabaseUrl::Sqlite(path) => path.clone(),
            DatabaseUrl::Postgres(url) => redact(url),
        }
    );
    let handle = server.handle();
    // actix-server only starts serving once its future is polled.
    let server = actix_web::rt::spawn(server);
    Ok(Running { addr, server, handle, presence, broker: running_broker, arbiters })
}

impl Running {
    /// Serves until stopped.
    pub async fn wait(self) -> Result<()> {
        let result = match self.server.await {
            Ok(served) => served.map_err(|err| Error::Internal(format!("server: {err}"))),
            Err(err) => Err(Error::Internal(format!("server task: {err}"))),
        };
        self.broker.stop().await;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        result
    }

    /// Closes every session with 1012 (so that clients reconnect), stops accepting, and waits
    /// for the server to finish.
    pub async fn stop(self) -> Result<()> {
        stop_gracefully(&self.presence, &self.handle).await;
        self.wait().await
    }
}

async fn stop_gracefully(presence: &actix::Addr<Presence>, handle: &ServerHandle) {
    let _ = presence.send(CloseAll).await;
    handle.stop(true).await;
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            log::warn!("cannot listen for SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
