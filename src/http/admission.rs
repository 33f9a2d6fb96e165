//! Who may hold what open. One address may hold `PARLEY_MAX_CONNECTIONS_PER_ADDRESS` TCP
//! connections: each is counted when it is accepted ([`Admission::on_connect`]) and one over the
//! cap is answered `rate_limited` at its first request and closed ([`refuse_over_cap`]); one
//! that never sends a request is closed by the 5 s timeout on request headers. A user may hold
//! `PARLEY_MAX_SESSIONS_PER_USER` WebSocket sessions on a node and an address
//! `PARLEY_MAX_SESSIONS_PER_ADDRESS`, refused at the upgrade ([`Admission::session`]), before
//! any WebSocket exists.
//!
//! Connections are counted by TCP peer: a connection does not know its client until a request
//! says so, and a trusted proxy carries many clients' requests on its connections, so its own
//! connections are not counted (it has limits of its own to set). Sessions are counted by
//! [`client_ip`], as every per-address limit is.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;

use super::client_ip::{TrustedProxies, client_ip};
use crate::config::Exposure;
use crate::error::{Error, Result};
use crate::slots::{Holder, Slot, Slots};
use crate::types::UserId;

/// What a client over a cap is told to wait: places free up only as its own connections or
/// sessions end, so a retry much sooner would only be refused again.
const RETRY_AFTER_MS: u64 = 5_000;

pub struct Admission {
    proxies: TrustedProxies,
    connections: Slots,
    user_sessions: Slots,
    address_sessions: Slots,
}

/// Left on each connection by [`Admission::on_connect`]: its place (given back when the
/// connection, and with it this value, is dropped), or `None` when it is over the cap.
struct ConnectionPlace(Option<Slot>);

impl Admission {
    pub fn new(exposure: &Exposure, proxies: TrustedProxies) -> Self {
        Admission {
            proxies,
            connections: Slots::new(exposure.max_connections_per_address),
            user_sessions: Slots::new(exposure.max_sessions_per_user),
            address_sessions: Slots::new(exposure.max_sessions_per_address),
        }
    }

    /// A TCP connection was accepted from `peer`: its place is kept in the connection's
    /// `extensions`, which live exactly as long as the connection.
    pub fn on_connect(&self, peer: IpAddr, extensions: &mut Extensions) {
        let peer = peer.to_canonical();
        if self.proxies.contains(peer) {
            return;
        }
        let place = self.connections.take(Holder::Address(peer));
        if place.is_none() {
            refused("connections_per_address");
        }
        extensions.insert(ConnectionPlace(place));
    }

    /// Places for one more session of `user`, from the request's client address; `rate_limited`
    /// when either is full. The session holds them until it ends.
    pub fn session(&self, req: &HttpRequest, user: UserId) -> Result<Vec<Slot>> {
        self.session_at(client_ip(req, &self.proxies), user)
    }

    /// The same, for a client at `address` (a Socket.IO session starts after its handshake).
    pub fn session_at(&self, address: std::net::IpAddr, user: UserId) -> Result<Vec<Slot>> {
        let by_user = self.user_sessions.take(Holder::User(user)).ok_or_else(|| full("sessions_per_user"))?;
        let by_address =
            self.address_sessions.take(Holder::Address(address)).ok_or_else(|| full("sessions_per_address"))?;
        Ok(vec![by_user, by_address])
    }
}

fn refused(limit: &'static str) {
    metrics::counter!(crate::metrics::REFUSED, "limit" => limit).increment(1);
}

fn full(limit: &'static str) -> Error {
    refused(limit);
    Error::RateLimited { retry_after_ms: RETRY_AFTER_MS }
}

/// Middleware: a request on a connection over its address's cap is answered `rate_limited`,
/// and the connection is closed.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.conn_data::<ConnectionPlace>().is_some_and(|place| place.0.is_none()) {
        let mut response = Error::RateLimited { retry_after_ms: RETRY_AFTER_MS }.error_response();
        response.head_mut().set_connection_type(ConnectionType::Close);
        return Ok(req.into_response(response));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
