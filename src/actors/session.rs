//! WsSession: one actor per WebSocket. It keeps the heartbeat and the token's expiry, parses
//! frames into commands, and handles every command in one `match` (`WsSession::command`):
//! writes go to the conversation's actor, reads (join, sync) to the Store, `presence:query` to
//! Presence. It writes replies and events through its outgoing queue ([`super::outgoing`]). The
//! token was checked at the upgrade; after that, the session only watches its expiry and, every
//! `PARLEY_REVOCATION_CHECK_MS`, whether its user signed out everywhere (both close with 4001).
//!
//! Every session shares one [`SessionDeps`]: the handles it needs, built once by the server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::*;
use actix_web::web;
use actix_ws::{AggregatedMessage, ProtocolError};
use serde::Serialize;

use super::conversation::{ConversationActor, MarkRead, SendMessage, Typing, Typists};
use super::outgoing::{Outgoing, SessionHandle, close};
use super::presence::{self, Connect, Disconnect, Presence};
use super::registry::{Registry, WeakConversationHandle};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::protocol::{
    self, ClientCommand, ClientFrame, Conversation, Empty, Event, Ref, SyncData, encode_error, encode_reply,
};
use crate::rate_limit::{RateLimiter, TokenBucket};
use crate::rules;
use crate::slots::Slot;
use crate::store::Store;
use crate::types::{ConversationId, Seq, SessionId, UserId};

/// What every session needs, shared by all of them (one allocation per server, not one per
/// socket).
pub struct SessionDeps {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub presence: Addr<Presence>,
    pub limits: Arc<Limits>,
    /// Messages per second per user, shared with REST (`AppState::rate`).
    pub rate: Arc<RateLimiter>,
    /// How often a session checks that its token was not revoked.
    pub revocation_check: Duration,
}

/// How long a stopping session waits for the client to fall silent before it closes.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// Conversation addresses a session remembers; past this it starts over (a lookup is cheap,
/// this only keeps the common case off the registry).
const REMEMBERED_CONVERSATIONS: usize = 64;

pub struct WsSession {
    id: SessionId,
    user: crate::protocol::User,
    expires_at: i64,
    /// The token's `iat`, compared with the user's sign-out-everywhere time.
    issued_at: Option<i64>,
    out: SessionHandle,
    deps: web::Data<SessionDeps>,
    last_heard: Instant,
    conversations: HashMap<ConversationId, WeakConversationHandle>,
    /// Frames the client may still send now (PARLEY_MAX_FRAMES_PER_SEC).
    frames: TokenBucket,
    /// Commands whose reply has not been sent yet.
    in_flight: usize,
    /// The server is stopping: no new commands; close (1012) once `in_flight` is zero.
    draining: bool,
    /// The places this session takes in the caps on sessions per user and per address, given
    /// back when the session ends (the actor is dropped).
    _slots: Vec<Slot>,
}

impl WsSession {
    pub fn new(
        user: crate::protocol::User,
        token: &crate::auth::AuthUser,
        out: SessionHandle,
        deps: web::Data<SessionDeps>,
        slots: Vec<Slot>,
    ) -> Self {
        let frames = TokenBucket::full(2.0 * deps.limits.max_frames_per_sec);
        WsSession {
            id: out.id,
            user,
            expires_at: token.expires_at,
            issued_at: token.issued_at,
            out,
            deps,
            last_heard: Instant::now(),
            conversations: HashMap::new(),
            frames,
            in_flight: 0,
            draining: false,
            _slots: slots,
        }
    }

    fn user_id(&self) -> UserId {
        self.user.id
    }

    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        log::debug!("session {}: closing ({code} {reason})", self.id);
        self.out.close(code, reason);
        ctx.stop();
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.last_heard.elapsed() >= 3 * self.deps.limits.heartbeat() {
            self.close(close::GOING_AWAY, "heartbeat timeout", ctx);
        } else {
            self.out.push(Outgoing::Ping);
        }
    }

    /// Replies to a command once `work` is done: an `ack` if the client gave a `ref` (it has
    /// nothing to match it with otherwise), an `error` in any case.
    fn respond<T, F>(&mut self, reference: Option<Ref>, work: F, ctx: &mut Context<Self>)
    where
        T: Serialize + 'static,
        F: Future<Output = Result<T>> + 'static,
    {
        self.in_flight += 1;
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            if reference.is_some() || result.is_err() {
                act.out.deliver(&encode_reply(reference.as_ref(), &result));
            }
            act.in_flight -= 1;
            act.close_if_drained(ctx);
        }));
    }

    /// Graceful shutdown: the replies of commands in flight go out first (an ack only after its
    /// commit, or an error: never silence), then the close.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        self.draining = true;
        self.close_if_drained(ctx);
    }

    /// Closes once nothing is in flight and the input has been quiet for [`DRAIN_QUIET`], so that
    /// frames the client sent just before the stop (already in the socket, not yet read) are
    /// read and answered too (with `unavailable`). The server's shutdown timeout bounds it all.
    fn close_if_drained(&mut self, ctx: &mut Context<Self>) {
        if !self.draining || self.in_flight > 0 {
            return;
        }
        let quiet = self.last_heard.elapsed();
        if quiet >= DRAIN_QUIET {
            self.close(close::RESTART, "server restarting: reconnect and sync", ctx);
        } else {
            ctx.run_later(DRAIN_QUIET - quiet, |act, ctx| act.close_if_drained(ctx));
        }
    }

    /// Sends `msg` to the actor of `id`. The message is queued now, so that a session's sends
    /// keep their order; if that actor had stopped, once more to a fresh one.
    fn call_conversation<M, R>(&mut self, id: ConversationId, msg: M) -> impl Future<Output = Result<R>> + use<M, R>
    where
        M: actix::Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        ConversationActor: Handler<M>,
        <ConversationActor as Actor>::Context: ToEnvelope<ConversationActor, M>,
    {
        let first = match self.conversations.get(&id).and_then(WeakConversationHandle::upgrade) {
            Some(conversation) => Ok(conversation),
            None => self.deps.registry.get(id).inspect(|conversation| {
                if self.conversations.len() >= REMEMBERED_CONVERSATIONS {
                    self.conversations.clear();
                }
                self.conversations.insert(id, conversation.downgrade());
            }),
        };
        self.deps.registry.send_or_retry(id, first, msg)
    }

    fn command(&mut self, reference: Option<Ref>, command: ClientCommand, ctx: &mut Context<Self>) {
        if self.draining {
            let err = Error::Unavailable("the server is restarting: reconnect and retry".into());
            self.out.deliver(&encode_error(reference.as_ref(), &err));
            return;
        }
        let user = self.user_id();
        let deps = self.deps.clone();
        match command {
            ClientCommand::MessageSend(data) => {
                let checked = rules::check_send(
                    &deps.limits,
                    &deps.rate,
                    user,
                    &data.body,
                    data.client_id.as_deref(),
                    &data.attachment_ids,
                );
                let send = checked.map(|()| {
                    let send = SendMessage {
                        sender: user,
                        body: data.body,
                        client_id: data.client_id,
                        attachments: data.attachment_ids,
                    };
                    self.call_conversation(data.conversation_id, send)
                });
                self.respond(reference, async move { Ok(Sent { message: send?.await? }) }, ctx);
            }
            ClientCommand::ConversationJoin(data) => {
                let typing = deps.registry.live(data.conversation_id).map(|c| c.send(Typists { viewer: user }));
                self.respond(reference, join(deps, user, data.conversation_id, data.limit, typing), ctx);
            }
            ClientCommand::ConversationLeave(data) => {
                // Closing the view: typing ends there. Events keep coming, as to every member.
                let stop = deps.registry.live(data.conversation_id).map(|c| c.send(Typing { user, typing: false }));
                self.respond(
                    reference,
                    async move {
                        if !deps.store.is_member(data.conversation_id, user).await? {
                            return Err(Error::no_conversation());
                        }
                        if let Some(stop) = stop {
                            stop.await?;
                        }
                        Ok(Empty {})
                    },
                    ctx,
                );
            }
            ClientCommand::TypingStart(data) => {
                let start = self.call_conversation(data.conversation_id, Typing { user, typing: true });
                self.respond(reference, async move { start.await.map(|()| Empty {}) }, ctx);
            }
            ClientCommand::TypingStop(data) => {
                let stop = self.call_conversation(data.conversation_id, Typing { user, typing: false });
                self.respond(reference, async move { stop.await.map(|()| Empty {}) }, ctx);
            }
            ClientCommand::ReadMark(data) => {
                let mark =
                    self.call_conversation(data.conversation_id, MarkRead { user, seq: data.seq, unread: false });
                self.respond(reference, mark, ctx);
            }
            ClientCommand::Sync(data) => self.respond(reference, sync(deps, user, data), ctx),
            ClientCommand::PresenceQuery(data) => {
                let users = data.user_ids;
                self.respond(
                    reference,
                    async move { Ok(PresenceAck { presence: presence::query(&deps.presence, user, users).await? }) },
                    ctx,
                );
            }
            ClientCommand::Ping => self.respond(reference, async { Ok(Empty {}) }, ctx),
        }
    }
}

#[derive(Serialize)]
struct Sent {
    message: protocol::Message,
}

#[derive(Serialize)]
struct JoinAck {
    conversation: Conversation,
    messages: Vec<protocol::Message>,
    typing: Vec<UserId>,
}

#[derive(Serialize)]
struct SyncAck {
    conversations: Vec<SyncedConversation>,
}

#[derive(Serialize)]
struct SyncedConversation {
    conversation_id: ConversationId,
    messages: Vec<protocol::Message>,
    has_more: bool,
}

#[derive(Serialize)]
struct PresenceAck {
    presence: Vec<protocol::Presence>,
}

/// `conversation:join`: the conversation, its latest messages and who is typing. A read: it goes
/// to the Store, and asks the actor only for typing, and only if one is live.
async fn join(
    deps: web::Data<SessionDeps>,
    user: UserId,
    id: ConversationId,
    limit: Option<i64>,
    typing: Option<impl Future<Output = Result<Vec<UserId>>>>,
) -> Result<JoinAck> {
    let limit = rules::messages_page(&deps.limits, limit)?;
    let conversation = deps.store.conversation_for(user, id).await?.ok_or_else(Error::no_conversation)?;
    let page = deps.store.history(id, None, None, limit).await?;
    let typing = match typing {
        Some(typing) => typing.await.unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(JoinAck { conversation, messages: page.messages, typing })
}

/// `sync`: for each conversation, what came after the client's last `seq`. Conversations the
/// user is not (or no longer) a member of are left out of the answer.
async fn sync(deps: web::Data<SessionDeps>, user: UserId, data: SyncData) -> Result<SyncAck> {
    if data.conversations.len() > deps.limits.max_batch {
        return Err(Error::bad_request(format!("sync at most {} conversations at once", deps.limits.max_batch)));
    }
    let limit = rules::messages_page(&deps.limits, data.limit)?;
    let mut conversations = Vec::with_capacity(data.conversations.len());
    for cursor in data.conversations {
        let after = cursor.after_seq;
        if after < Seq::ZERO {
            return Err(Error::bad_request("after_seq must be 0 or more"));
        }
        if !deps.store.is_member(cursor.conversation_id, user).await? {
            continue;
        }
        let page = deps.store.history(cursor.conversation_id, None, Some(after), limit).await?;
        conversations.push(SyncedConversation {
            conversation_id: cursor.conversation_id,
            messages: page.messages,
            has_more: page.has_more,
        });
    }
    Ok(SyncAck { conversations })
}

impl WsSession {
    /// Closes the session (4001, as at expiry) once its user has signed out everywhere. A
    /// database that cannot answer keeps the session open: the next check asks again.
    fn check_revocation(&mut self, ctx: &mut Context<Self>) {
        let (store, user, issued_at) = (self.deps.store.clone(), self.user.id, self.issued_at);
        // A task of its own, so that a session stopping meanwhile does not drop the database
        // read half-way (see `AuthUser::from_request`).
        let check =
            actix_web::rt::spawn(async move { crate::auth::revocation::still_valid(&store, user, issued_at).await });
        ctx.spawn(check.into_actor(self).map(|valid, act, ctx| {
            match valid.map_err(|err| Error::Internal(err.to_string())).and_then(|v| v) {
                Ok(true) => {}
                Ok(false) => {
                    crate::auth::revocation::revoked();
                    act.close(close::TOKEN_EXPIRED, "token revoked", ctx);
                }
                Err(err) => log::warn!("session {}: revocation check: {err}", act.id),
            }
        }));
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::debug!("session {}: opened for user {}", self.id, self.user.id);
        metrics::counter!(crate::metrics::SESSIONS_OPENED).increment(1);
        // `session:ready` only once Presence knows the session (and has told the conversation
        // actors), so that events sent after it reach this session; frames wait meanwhile.
        let connect = self.deps.presence.send(Connect { session: self.out.clone() });
        ctx.wait(connect.into_actor(self).map(|_, act, _| {
            let ready =
                Event::SessionReady { session_id: act.id, user: &act.user, heartbeat_ms: act.deps.limits.heartbeat_ms };
            act.out.deliver(&ready.encode());
        }));
        ctx.run_interval(self.deps.limits.heartbeat(), |act, ctx| act.heartbeat(ctx));
        ctx.spawn(self.out.stopping().into_actor(self).map(|(), act, ctx| act.drain(ctx)));
        let left = self.expires_at.saturating_sub(chrono::Utc::now().timestamp()).max(0);
        ctx.run_later(Duration::from_secs(left as u64), |act, ctx| {
            act.close(close::TOKEN_EXPIRED, "token expired", ctx)
        });
        ctx.run_interval(self.deps.revocation_check, |act, ctx| act.check_revocation(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        log::debug!("session {}: closed", self.id);
        self.out.close(close::NORMAL, "");
        self.deps.presence.do_send(Disconnect { session: self.id, user: self.user.id });
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let per_sec = self.deps.limits.max_frames_per_sec;
        if self.frames.take(per_sec, 2.0 * per_sec).is_err() {
            self.close(close::POLICY, "too many frames", ctx);
            return;
        }
        match item {
            Ok(AggregatedMessage::Text(text)) => {
                let ClientFrame { reference, command } = ClientFrame::parse(&text);
                match command {
                    Ok(command) => self.command(reference, command, ctx),
                    Err(err) => self.out.deliver(&encode_error(reference.as_ref(), &err)),
                }
            }
            Ok(AggregatedMessage::Binary(_)) => {
                let err = Error::bad_request("binary frames are not supported: send JSON text frames");
                self.out.deliver(&encode_error(None, &err));
            }
            Ok(AggregatedMessage::Ping(payload)) => self.out.push(Outgoing::Pong(payload)),
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(close::NORMAL, "", ctx),
            Err(err) if too_big(&err) => {
                let max = self.deps.limits.max_frame_bytes;
                self.close(close::TOO_BIG, &format!("frame larger than {max} bytes"), ctx);
            }
            Err(ProtocolError::Io(err)) if err.kind() == std::io::ErrorKind::InvalidData => {
                self.close(close::INVALID_DATA, "text frames must be UTF-8", ctx);
            }
            Err(err) => {
                log::debug!("session {}: protocol error: {err}", self.id);
                self.close(close::PROTOCOL_ERROR, "protocol error", ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A frame, or a message of several fragments, over the size limit. actix-ws reports the first
/// as `Overflow` and the second, from its aggregation of fragments, as an I/O error of its own
/// wording; both are one limit to the client (1009), not a protocol error (1002).
fn too_big(err: &ProtocolError) -> bool {
    match err {
        ProtocolError::Overflow => true,
        ProtocolError::Io(io) => io.kind() == std::io::ErrorKind::Other && io.to_string().contains("continuation size"),
        _ => false,
    }
}
