//! The write queue of a conversation: writes commit one after another, and each commit is then
//! applied to the live state, broadcast, and acknowledged, in that order.
//!
//! Plain sends waiting in the queue go to the group committer together, as one job (their order
//! kept), and share a transaction with other conversations' sends. Membership changes and read
//! markers commit on their own. A send that has waited past the send deadline is shed with
//! `unavailable`, and so is a new one while the queue's oldest has waited half of it: under
//! overload, what is accepted still commits in bounded time.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix::prelude::*;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::{ConversationActor, MemberState, State};
use crate::actors::presence::{DeliverTo, Unwatch, Watch};
use crate::cluster::{Change, ClusterEvent, EventKind};
use crate::error::{Error, Result};
use crate::protocol::{Event, Message as Msg, ReadState, Role};
use crate::store::{Appended, MembershipChange, NewMessage};
use crate::types::UserId;

pub(super) enum Write {
    Append {
        new: NewMessage,
        reply: oneshot::Sender<Result<Msg>>,
        /// When the actor accepted it: the send latency counts from here.
        since: Instant,
    },
    /// `moved` is false when the marker already is at `seq`: then only the counts are answered.
    Marker { user: UserId, seq: i64, moved: bool, reply: oneshot::Sender<Result<ReadState>> },
}

impl Write {
    pub(super) fn append(new: NewMessage, reply: oneshot::Sender<Result<Msg>>) -> Write {
        Write::Append { new, reply, since: Instant::now() }
    }
}

pub(super) enum Reply {
    Append(oneshot::Sender<Result<Msg>>, Option<MembershipChange>),
    /// Plain sends committed as one job, with when each was accepted.
    Sends(Vec<(oneshot::Sender<Result<Msg>>, Instant)>),
    Marker(oneshot::Sender<Result<ReadState>>),
}

/// `unread:updated` to recipients after sends, coalesced: at most one totals query in flight and
/// one per `PARLEY_UNREAD_INTERVAL_MS`, and all the users that changed meanwhile go in the next
/// one. (A busy conversation would otherwise cost a query per message.)
#[derive(Default)]
pub(super) struct UnreadUpdates {
    dirty: HashSet<UserId>,
    querying: bool,
    /// A flush waits for the interval to pass.
    waiting: bool,
    /// When the last totals query started.
    last: Option<Instant>,
}

impl UnreadUpdates {
    pub(super) fn busy(&self) -> bool {
        self.querying || self.waiting
    }
}

impl ConversationActor {
    /// After a fault: the write in flight may or may not have committed. Its sender hears so, and
    /// retries with its client_id, which makes the retry safe. Queued writes run after the reload.
    pub(super) fn interrupt_write(&mut self) {
        let interrupted = || Error::Unavailable("interrupted by a fault: retry with the same client_id".into());
        match self.in_flight.take() {
            Some(Reply::Append(reply, _)) => drop(reply.send(Err(interrupted()))),
            Some(Reply::Sends(replies)) => {
                for (reply, _) in replies {
                    drop(reply.send(Err(interrupted())));
                }
            }
            Some(Reply::Marker(reply)) => drop(reply.send(Err(interrupted()))),
            None => {}
        }
    }

    /// A write found the database unavailable: the queued ones would wait their turn only to
    /// fail the same way, so they get the answer now (none of them was committed).
    fn fail_fast(&mut self, err: &Error) {
        if let Error::Unavailable(why) = err {
            let why = why.clone();
            self.fail_writes(|| Error::Unavailable(why.clone()));
        }
    }

    pub(super) fn fail_writes(&mut self, err: impl Fn() -> Error) {
        for write in self.writes.drain(..) {
            match write {
                Write::Append { reply, .. } => drop(reply.send(Err(err()))),
                Write::Marker { reply, .. } => drop(reply.send(Err(err()))),
            }
        }
    }

    pub(super) fn enqueue(&mut self, write: Write, ctx: &mut Context<Self>) {
        match write {
            // A standing queue: this send would likely miss the deadline, so it is refused now
            // rather than after waiting for it.
            Write::Append { reply, .. } if self.backlogged() => shed(reply),
            write => {
                self.writes.push_back(write);
                self.next_write(ctx);
            }
        }
    }

    /// Has the oldest queued send waited half the send deadline already?
    fn backlogged(&self) -> bool {
        let half = self.deps.limits.send_deadline() / 2;
        matches!(self.writes.front(), Some(Write::Append { since, .. }) if since.elapsed() > half)
    }

    /// Takes the plain sends at the head of the queue (at most a batch), and sheds those that
    /// have waited past the deadline.
    fn take_sends(&mut self) -> Vec<(NewMessage, oneshot::Sender<Result<Msg>>, Instant)> {
        let (max, deadline) = (self.deps.committer.max_batch(), self.deps.limits.send_deadline());
        let mut sends = Vec::new();
        while sends.len() < max {
            match self.writes.pop_front() {
                Some(Write::Append { new, reply, since }) if new.membership.is_none() => {
                    if since.elapsed() > deadline {
                        shed(reply);
                    } else {
                        sends.push((new, reply, since));
                    }
                }
                Some(other) => {
                    self.writes.push_front(other);
                    break;
                }
                None => break,
            }
        }
        sends
    }

    /// Starts the next queued write unless one is in flight.
    pub(super) fn next_write(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || !matches!(self.state, State::Live(_)) {
            return;
        }
        if matches!(self.writes.front(), Some(Write::Append { new, .. }) if new.membership.is_none()) {
            let sends = self.take_sends();
            if sends.is_empty() {
                return self.next_write(ctx);
            }
            return self.commit_sends(sends, ctx);
        }
        let Some(write) = self.writes.pop_front() else {
            return;
        };
        let store = self.deps.store.clone();
        match write {
            Write::Append { new, reply, since } => {
                self.in_flight = Some(Reply::Append(reply, new.membership));
                let commit = async move { store.append(&new).await };
                ctx.spawn(AssertUnwindSafe(commit).catch_unwind().into_actor(self).map(move |result, act, ctx| {
                    let Some(Reply::Append(reply, membership)) = act.in_flight.take() else {
                        return;
                    };
                    match result {
                        Ok(Ok(appended)) => {
                            metrics::histogram!(crate::metrics::SEND_SECONDS).record(since.elapsed().as_secs_f64());
                            // A fault here drops `reply`: the caller hears "interrupted".
                            let _ = act.guarded(ctx, |act, ctx| act.committed(appended, membership, reply, ctx));
                        }
                        Ok(Err(err)) => {
                            act.fail_fast(&err);
                            drop(reply.send(Err(err)));
                        }
                        Err(_) => drop(act.guarded(ctx, |_, _| panic!("the append panicked"))),
                    }
                    act.next_write(ctx);
                }));
            }
            Write::Marker { user, seq, moved, reply } => {
                self.in_flight = Some(Reply::Marker(reply));
                let id = self.id;
                let commit = async move {
                    if moved {
                        store.set_read_marker(id, user, seq).await?;
                    }
                    store.total_unread(user).await
                };
                ctx.spawn(commit.into_actor(self).map(move |result, act, ctx| {
                    let Some(Reply::Marker(reply)) = act.in_flight.take() else {
                        return;
                    };
                    if let Err(err) = &result {
                        act.fail_fast(err);
                    }
                    let outcome = result.and_then(|total| act.marker_moved(user, seq, moved, total));
                    let _ = reply.send(outcome);
                    act.next_write(ctx);
                }));
            }
        }
    }

    /// Hands plain sends to the group committer as one job; then each is committed (broadcast,
    /// acknowledged) or answered its error, in order.
    fn commit_sends(
        &mut self,
        sends: Vec<(NewMessage, oneshot::Sender<Result<Msg>>, Instant)>,
        ctx: &mut Context<Self>,
    ) {
        let accepted = sends[0].2;
        let (messages, replies): (Vec<NewMessage>, Vec<_>) =
            sends.into_iter().map(|(new, reply, since)| (new, (reply, since))).unzip();
        self.in_flight = Some(Reply::Sends(replies));
        let (committer, id) = (self.deps.committer.clone(), self.id);
        let commit = async move { committer.append(id, messages, accepted).await };
        ctx.spawn(commit.into_actor(self).map(|results, act, ctx| {
            let Some(Reply::Sends(replies)) = act.in_flight.take() else {
                return;
            };
            let mut faulted = false;
            for ((reply, since), result) in replies.into_iter().zip(results) {
                match result {
                    // After a fault the rest are dropped: their senders hear "interrupted" and
                    // retry with their client_id, which finds them stored.
                    _ if faulted => drop(reply),
                    Ok(appended) => {
                        metrics::histogram!(crate::metrics::SEND_SECONDS).record(since.elapsed().as_secs_f64());
                        faulted = act.guarded(ctx, |act, ctx| act.committed(appended, None, reply, ctx)).is_err();
                    }
                    Err(err) => {
                        act.fail_fast(&err);
                        if matches!(err, Error::NotFound(_)) {
                            // The store knows a sender is no member: this actor's list is stale.
                            act.reload_members(ctx);
                        }
                        drop(reply.send(Err(err)));
                    }
                }
            }
            act.next_write(ctx);
        }));
    }

    /// `message:new` to every member session here, the sender's own included; counted.
    pub(super) fn broadcast_message(&self, frame: &crate::protocol::Frame) {
        let sessions = self.broadcast(frame, None);
        metrics::counter!(crate::metrics::MESSAGES_DELIVERED).increment(sessions as u64);
    }

    /// After a message committed: update the live state, broadcast, then ack.
    pub(super) fn committed(
        &mut self,
        appended: Appended,
        membership: Option<MembershipChange>,
        reply: oneshot::Sender<Result<Msg>>,
        ctx: &mut Context<Self>,
    ) {
        let message = appended.message;
        if appended.duplicate {
            let _ = reply.send(Ok(message)); // stored and broadcast the first time
            return;
        }
        let (id, sender, seq) = (self.id, message.sender_id, message.seq);
        let State::Live(live) = &mut self.state else {
            return;
        };
        live.last_seq = live.last_seq.max(seq);
        if let Some(member) = live.members.get_mut(&sender) {
            member.last_read_seq = seq;
        }
        if live.typing.remove(&sender).is_some() {
            self.broadcast(
                &Event::TypingUpdated { conversation_id: id, user_id: sender, typing: false }.encode(),
                Some(sender),
            );
        }
        self.queue_unread(sender, ctx);
        metrics::counter!(crate::metrics::MESSAGES_SENT).increment(1);
        let frame = Event::MessageNew { message: &message }.encode();
        let change = membership.map(|change| Change::new(change, appended.new_owner));
        self.deps.broker.publish(ClusterEvent::with_frame(
            EventKind::Message { conversation: id, seq, sender, change },
            frame.clone(),
        ));
        match membership {
            None => {
                self.deliver_in_order(seq, frame, ctx);
                let _ = reply.send(Ok(message));
            }
            Some(MembershipChange::Add(user)) => self.admit(user, seq, frame, ctx, move |act| {
                act.announce_membership(MembershipChange::Add(user));
                let _ = reply.send(Ok(message));
            }),
            Some(MembershipChange::Remove(user)) => {
                self.deliver_in_order(seq, frame, ctx); // the leaver sees their leaving too
                self.remove_member_after(seq, user, appended.new_owner);
                self.announce_membership(MembershipChange::Remove(user));
                let _ = reply.send(Ok(message));
            }
        }
    }

    /// `user` joined with message `seq`: delivers it once the newcomer's sessions are known (the
    /// actor waits for Presence, and nothing else of this conversation runs meanwhile), then
    /// runs `then`.
    pub(super) fn admit(
        &mut self,
        user: UserId,
        seq: i64,
        frame: crate::protocol::Frame,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self) + 'static,
    ) {
        let watch = Watch { conversation: self.id, users: vec![user], watcher: ctx.address().downgrade().recipient() };
        ctx.wait(self.deps.presence.send(watch).into_actor(self).map(move |sessions, act, ctx| {
            if let State::Live(live) = &mut act.state {
                let sessions = sessions.ok().and_then(|mut s| s.remove(&user)).unwrap_or_default();
                live.members.insert(user, MemberState { role: Role::Member, last_read_seq: seq - 1, sessions });
            }
            act.deliver_in_order(seq, frame, ctx);
            then(act);
        }));
    }

    /// `conversation:updated` to everyone concerned, each with their own unread count.
    pub(super) fn announce_membership(&mut self, change: MembershipChange) {
        let Ok(live) = self.live() else { return };
        let mut users: Vec<UserId> = live.members.keys().copied().collect();
        if let MembershipChange::Remove(user) = change
            && !users.contains(&user)
        {
            users.push(user); // so that their clients drop the conversation
        }
        let (id, store, presence) = (self.id, self.deps.store.clone(), self.deps.presence.clone());
        actix::spawn(async move {
            for user in users {
                match store.conversations_for(user, &[id]).await {
                    Ok(found) => {
                        for conversation in &found {
                            let frame = Event::ConversationUpdated { conversation }.encode();
                            presence.do_send(DeliverTo { users: vec![user], frame });
                        }
                    }
                    Err(err) => {
                        log::warn!("conversation {id}: cannot announce a membership change: {err}")
                    }
                }
            }
        });
    }

    /// After a read marker committed: `unread:updated` to the reader, `read:updated` (the read
    /// receipt) to every member; nothing to announce when it did not move.
    pub(super) fn marker_moved(&mut self, user: UserId, seq: i64, moved: bool, total_unread: i64) -> Result<ReadState> {
        let id = self.id;
        let live = self.live()?;
        let last_seq = live.last_seq;
        let Some(member) = live.members.get_mut(&user) else {
            return Err(Error::no_conversation());
        };
        member.last_read_seq = seq;
        let state = ReadState { last_read_seq: seq, unread_count: (last_seq - seq).max(0), total_unread };
        if !moved {
            return Ok(state);
        }
        self.deps.broker.publish(ClusterEvent::new(EventKind::Read {
            conversation: id,
            user,
            seq,
            unread_count: state.unread_count,
            total_unread,
        }));
        self.read_moved(user, seq, state.unread_count, total_unread);
        Ok(state)
    }

    /// `unread:updated` to the reader's sessions here, `read:updated` to every member's.
    pub(super) fn read_moved(&mut self, user: UserId, seq: i64, unread_count: i64, total_unread: i64) {
        let id = self.id;
        let State::Live(live) = &mut self.state else { return };
        let Some(member) = live.members.get_mut(&user) else { return };
        member.last_read_seq = member.last_read_seq.max(seq);
        let unread = Event::UnreadUpdated { conversation_id: id, unread_count, total_unread }.encode();
        for session in &member.sessions {
            session.deliver(&unread);
        }
        self.broadcast(&Event::ReadUpdated { conversation_id: id, user_id: user, last_read_seq: seq }.encode(), None);
    }

    /// After a send: the other online members' unread counts changed.
    pub(super) fn queue_unread(&mut self, sender: UserId, ctx: &mut Context<Self>) {
        if let State::Live(live) = &self.state {
            let changed = live.members.iter().filter(|(u, m)| **u != sender && !m.sessions.is_empty()).map(|(u, _)| *u);
            self.unread.dirty.extend(changed);
        }
        self.flush_unread(ctx);
    }

    pub(super) fn flush_unread(&mut self, ctx: &mut Context<Self>) {
        if self.unread.busy() || self.unread.dirty.is_empty() {
            return;
        }
        let interval = self.deps.limits.unread_interval();
        if let Some(wait) = self.unread.last.and_then(|last| interval.checked_sub(last.elapsed()))
            && !wait.is_zero()
        {
            self.unread.waiting = true;
            ctx.run_later(wait, |act, ctx| {
                act.unread.waiting = false;
                act.flush_unread(ctx);
            });
            return;
        }
        self.unread.last = Some(Instant::now());
        let dirty = std::mem::take(&mut self.unread.dirty);
        let State::Live(live) = &self.state else {
            return;
        };
        // Counts are taken now, before the totals query starts, so that a total is never below
        // the count it comes with; any later change is in the next round.
        let last_seq = live.last_seq;
        let counts: Vec<(UserId, i64)> = dirty
            .into_iter()
            .filter_map(|u| live.members.get(&u).map(|m| (u, (last_seq - m.last_read_seq).max(0))))
            .collect();
        let users: Vec<UserId> = counts.iter().map(|(u, _)| *u).collect();
        self.unread.querying = true;
        let store = self.deps.store.clone();
        let id = self.id;
        ctx.spawn(async move { store.unread_totals(&users).await }.into_actor(self).map(move |totals, act, ctx| {
            act.unread.querying = false;
            match totals {
                Ok(totals) => {
                    if let State::Live(live) = &act.state {
                        for (user, unread_count) in counts {
                            let total_unread = totals.get(&user).copied().unwrap_or(0).max(unread_count);
                            let frame =
                                Event::UnreadUpdated { conversation_id: id, unread_count, total_unread }.encode();
                            for session in live.members.get(&user).map_or(&[][..], |m| &m.sessions) {
                                session.deliver(&frame);
                            }
                        }
                    }
                }
                Err(err) => {
                    log::warn!("conversation {id}: cannot compute unread totals: {err}")
                }
            }
            act.flush_unread(ctx);
        }));
    }
}

/// Refuses a send that would miss the send deadline; it is counted.
fn shed(reply: oneshot::Sender<Result<Msg>>) {
    metrics::counter!(crate::metrics::SENDS_SHED).increment(1);
    drop(reply.send(Err(Error::Overloaded)));
}

impl ConversationActor {
    /// `user` left; `new_owner` (chosen by the store, in the same transaction) owns the group
    /// now.
    pub(super) fn remove_member(&mut self, user: UserId, new_owner: Option<UserId>) {
        if let State::Live(live) = &mut self.state {
            live.members.remove(&user);
            live.typing.remove(&user);
            if let Some(owner) = new_owner.and_then(|id| live.members.get_mut(&id)) {
                owner.role = Role::Owner;
            }
        }
        self.deps.presence.do_send(Unwatch { conversation: self.id, users: vec![user] });
    }
}

/// A reply that arrives once a queued write has committed. A reply dropped unsent means a
/// fault interrupted the write after it was taken: it may have committed, so this is not
/// `ActorStopped` (which callers retry blindly) but a plain `unavailable`.
pub(super) fn later<T: Send + 'static>(rx: oneshot::Receiver<Result<T>>) -> ResponseFuture<Result<T>> {
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(Error::Unavailable("interrupted by a fault: retry with the same client_id".into())))
    })
}
