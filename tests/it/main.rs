//! Parley's integration tests: real servers on real sockets, one module per behaviour. The
//! module's name says what it proves; most scenarios run once per backend (`name::sqlite`,
//! `name::postgres`).
//!
//! One test binary, not one per file: one link instead of many, and one process that can say at
//! the end which suites it could not run (`common::skips`). Nothing here sets environment
//! variables, and the tests that count exactly (metrics, memory) measure a server process of
//! their own, so sharing the process costs no test its isolation.
//!
//! Accounts and access
//! - `accounts`: registration, usernames, passwords, login and its throttle.
//! - `admin_names`: the admin names cannot be registered; their accounts come from a setting.
//! - `registration_limit`: registrations per address per hour.
//! - `weak_passwords`, `display_names`: what a password and a display name may not be.
//! - `login_lockout`: the login throttle holds up the guessing address, not the account.
//! - `token_rules`: `crit` headers and the longest lifetime of a token.
//! - `sign_out_everywhere`: revoking every token of a user, by the user or an admin.
//! - `tokens`: bearer tokens on REST and the WebSocket, expiry, identity-system tokens.
//! - `authorization`: who may touch a conversation, and the admin role.
//! - `connection_limits`: a body that never comes is timed out; connections per address.
//! - `session_limits`: WebSocket sessions per user and per address, behind a proxy too.
//! - `group_invites`: how many groups one user may add people to a minute.
//! - `presence_audience`: presence is told only to people who share a conversation.
//! - `security_headers`: what the page and the API tell a browser (CSP, framing, nosniff).
//! - `origins`: which web pages may use the server (Origin, CORS).
//! - `startup`: what the server refuses to start with.
//!
//! Conversations and messages
//! - `attachments`: files in messages: upload, download, the rules of a send, removal, limits.
//! - `conversations`: creating and reading conversations; `conversation_list`: listing them.
//! - `membership`: adding, removing and leaving members of a group.
//! - `messages`: sending over REST and WebSocket, history, the shape of a message.
//! - `read_and_unread`: read markers and unread counts.
//! - `ordering`: concurrent senders get gapless seqs, sends share commits.
//! - `reconnect`: sync after a reconnect, idempotent resends.
//!
//! Inside a host product
//! - `service_api`: the service key opens /api/service and nothing else; provisioning users.
//! - `host_identity`: the host's own tokens and ids; renames reach the clients.
//! - `context_conversations`: one conversation per business object; lists by context.
//! - `system_messages`: the host's templated system messages, and Parley's own, translated.
//! - `policies`: closed registration, directory and conversation start.
//! - `observers`: reading without taking part.
//! - `archival`: archive and restore, the automatic sweep, hiding from one's list.
//! - `custom_events`: the host's events for a conversation's or a user's sessions.
//! - `openapi`: docs/openapi.json matches the route table, and the server serves it.
//! - `socketio`: socket.io-client front-ends (polling, WebSocket, the upgrade, aliases) on Parley.
//! - `socketio_protocol`: Engine.IO and Socket.IO by hand, one behaviour of their test suites each.
//!
//! The live connection
//! - `frames`: what the WebSocket does with bad, oversized, broken and flooding frames.
//! - `limits`: body, request, query and rate limits.
//! - `join_and_leave`, `typing`, `presence`, `sessions`: the live events.
//! - `slow_consumers`: a client that stops reading is cut off, its memory released.
//! - `conversation_actors`: inspection, supervision and retirement of the actors.
//! - `load_shedding`: sends that would wait too long are refused, never half-done.
//!
//! Operations
//! - `graceful_stop`: a stop answers what is in flight, then closes with 1012.
//! - `crash_and_outage`: SIGKILL and a database outage lose nothing acknowledged.
//! - `metrics`, `logs`: what operators see, and what they must never see.
//! - `random_input`: random REST bodies, queries and frames get clear answers.
//! - `web_client`: the bundled web client, served, and driven in a real browser.
//! - `bench`: `parley-bench`'s own accounting.
//! - `cluster`: several nodes on one PostgreSQL and one Redis.
//! - `storage`: attachment files on S3: parts, ranges, an outage, runtimes, memory.
//!
//! The code itself
//! - `layers`: the crate's modules depend one way (docs/ARCHITECTURE.md, "Layers").
//!
//! The decoder's property-based fuzz is a unit test of `src/protocol.rs` (`tests/fuzz/`).

#[macro_use]
mod common;

mod accounts;
mod admin_names;
mod archival;
mod attachments;
mod authorization;
mod bench;
mod cluster;
mod connection_limits;
mod context_conversations;
mod conversation_actors;
mod conversation_list;
mod conversations;
mod crash_and_outage;
mod custom_events;
mod display_names;
mod frames;
mod graceful_stop;
mod group_invites;
mod host_identity;
mod join_and_leave;
mod layers;
mod limits;
mod load_shedding;
mod login_lockout;
mod logs;
mod membership;
mod messages;
mod metrics;
mod observers;
mod openapi;
mod ordering;
mod origins;
mod policies;
mod presence;
mod presence_audience;
mod random_input;
mod read_and_unread;
mod reconnect;
mod registration_limit;
mod security_headers;
mod service_api;
mod session_limits;
mod sessions;
mod sign_out_everywhere;
mod slow_consumers;
mod socketio;
mod socketio_protocol;
mod startup;
mod storage;
mod system_messages;
mod token_rules;
mod tokens;
mod typing;
mod weak_passwords;
mod web_client;
