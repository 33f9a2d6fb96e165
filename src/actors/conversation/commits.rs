//! A write of the conversation actor, from its commit to its acknowledgement: the actor starts
//! the next commit the queue gives it, applies what committed to the live state (the same way
//! as a commit of another node, through `Live::apply_committed`), publishes it to the other
//! nodes, delivers it in `seq` order, and only then answers the writer. Then the effects that
//! may wait: unread counts (coalesced) and the `conversation:updated` of membership changes.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix::prelude::*;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::live::Membership;
use super::order::{GapCheck, GapDue, Released, Step};
use super::queue::{Composed, InFlight, Started};
use super::unread::{Flush, with_total};
use super::{ConversationActor, State};
use crate::actors::presence::{DeliverTo, Unwatch, Watch};
use crate::cluster::{Change, ClusterEvent, EventKind};
use crate::error::{Error, Result};
use crate::protocol::{self, Event, Frame, MessageKind, ReadState, Role};
use crate::store::{Appended, MembershipChange, NewMessage};
use crate::system_messages::Own;
use crate::types::{Seq, Unread, UserId};

impl ConversationActor {
    /// Starts the next queued write unless one is in flight.
    pub(super) fn next_write(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Live(_)) {
            return;
        }
        let (max_batch, deadline) = (self.deps.committer.max_batch(), self.deps.limits.send_deadline());
        match self.queue.start_next(max_batch, deadline) {
            None => {}
            Some(Started::Sends { messages, accepted }) => self.commit_sends(messages, accepted, ctx),
            Some(Started::Single { new }) => self.commit_single(new, ctx),
            Some(Started::Compose { by, what }) => self.commit_composed(by, what, ctx),
            Some(Started::Marker { user, seq, moved }) => self.commit_marker(user, seq, moved, ctx),
        }
    }

    /// Hands plain sends to the group committer as one job; then each is committed (broadcast,
    /// acknowledged) or answered its error, in order.
    fn commit_sends(&mut self, messages: Vec<NewMessage>, accepted: Instant, ctx: &mut Context<Self>) {
        let (committer, id) = (self.deps.committer.clone(), self.id);
        let commit = async move { committer.append(id, messages, accepted).await };
        ctx.spawn(commit.into_actor(self).map(|results, act, ctx| {
            let Some(InFlight::Sends(replies)) = act.queue.finish() else {
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
                        act.queue.fail_fast(&err);
                        act.refused(&err, ctx);
                        drop(reply.send(Err(err)));
                    }
                }
            }
            act.next_write(ctx);
        }));
    }

    /// The store refused a write for what this actor's live state did not know yet (another
    /// node changed it a moment ago): a sender is no member, or the conversation is archived.
    fn refused(&mut self, err: &Error, ctx: &mut Context<Self>) {
        match err {
            Error::NotFound(_) => self.reload_members(ctx),
            Error::Archived(_) => {
                if let State::Live(live) = &mut self.state {
                    live.archived = true;
                }
            }
            _ => {}
        }
    }

    /// Commits a membership change, or an archive or restore, on its own, with its system
    /// message, written now with the display names of the moment (by the system user when the
    /// service acts).
    fn commit_composed(&mut self, by: Option<UserId>, what: Composed, ctx: &mut Context<Self>) {
        let (store, id, language) = (self.deps.store.clone(), self.id, self.deps.language);
        let commit = async move {
            let user = match what {
                Composed::Membership(MembershipChange::Add(user, _) | MembershipChange::Remove(user)) => Some(user),
                Composed::Archive(_) => None,
            };
            let ids: Vec<UserId> = by.into_iter().chain(user).collect();
            let rows = store.users(&ids).await?;
            let name = |id: UserId| {
                rows.iter()
                    .find(|r| r.id == id)
                    .map(|r| (id, r.display_name.as_str()))
                    .ok_or_else(|| Error::NotFound("no such user".into()))
            };
            let actor = by.map(name).transpose()?;
            let own = match what {
                Composed::Membership(MembershipChange::Add(user, Role::Observer)) => {
                    Own::ObserverAdded { user: name(user)? }
                }
                Composed::Membership(MembershipChange::Add(user, _)) => {
                    Own::MemberAdded { by: actor, user: name(user)? }
                }
                Composed::Membership(MembershipChange::Remove(user)) if by == Some(user) => {
                    Own::MemberLeft { user: name(user)? }
                }
                Composed::Membership(MembershipChange::Remove(user)) => {
                    Own::MemberRemoved { by: actor, user: name(user)? }
                }
                Composed::Archive(true) => Own::Archived { by: actor },
                Composed::Archive(false) => Own::Restored { by: actor },
            };
            let mut new = NewMessage::system(id, by.unwrap_or(UserId::SYSTEM), own.render(language));
            match what {
                Composed::Membership(change) => new.membership = Some(change),
                Composed::Archive(archive) => new.archive = Some(archive),
            }
            store.append(&new).await
        };
        self.commit_alone(commit, ctx);
    }

    /// Commits a message on its own (it claims attachments, or removes one).
    fn commit_single(&mut self, new: NewMessage, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        self.commit_alone(async move { store.append(&new).await }, ctx);
    }

    /// Runs `commit`, a message's own transaction, then commits or answers its error.
    fn commit_alone(
        &mut self,
        commit: impl std::future::Future<Output = Result<Appended>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(AssertUnwindSafe(commit).catch_unwind().into_actor(self).map(move |result, act, ctx| {
            let Some(InFlight::Single(reply, change, since)) = act.queue.finish() else {
                return;
            };
            match result {
                Ok(Ok(appended)) => {
                    metrics::histogram!(crate::metrics::SEND_SECONDS).record(since.elapsed().as_secs_f64());
                    // A fault here drops `reply`: the caller hears "interrupted".
                    let _ = act.guarded(ctx, |act, ctx| act.committed(appended, change, reply, ctx));
                }
                Ok(Err(err)) => {
                    act.queue.fail_fast(&err);
                    act.refused(&err, ctx);
                    drop(reply.send(Err(err)));
                }
                Err(_) => drop(act.guarded(ctx, |_, _| panic!("the append panicked"))),
            }
            act.next_write(ctx);
        }));
    }

    fn commit_marker(&mut self, user: UserId, seq: Seq, moved: bool, ctx: &mut Context<Self>) {
        let (store, id) = (self.deps.store.clone(), self.id);
        let commit = async move {
            if moved {
                store.set_read_marker(id, user, seq).await?;
            }
            store.total_unread(user).await
        };
        ctx.spawn(commit.into_actor(self).map(move |result, act, ctx| {
            let Some(InFlight::Marker(reply)) = act.queue.finish() else {
                return;
            };
            if let Err(err) = &result {
                act.queue.fail_fast(err);
            }
            let outcome = result.and_then(|total| act.marker_committed(user, seq, moved, total));
            let _ = reply.send(outcome);
            act.next_write(ctx);
        }));
    }

    /// A message committed here: publish it to the other nodes, apply it, deliver it, then ack.
    fn committed(
        &mut self,
        appended: Appended,
        change: Option<MembershipChange>,
        reply: oneshot::Sender<Result<protocol::Message>>,
        ctx: &mut Context<Self>,
    ) {
        let message = appended.message;
        if appended.duplicate {
            let _ = reply.send(Ok(message)); // stored and broadcast the first time
            return;
        }
        let (id, sender, seq, archived) = (self.id, message.sender_id, message.seq, appended.archived);
        metrics::counter!(crate::metrics::MESSAGES_SENT).increment(1);
        let frame = Event::MessageNew { message: &message }.encode();
        let cluster_change = change.map(|change| Change::new(change, appended.new_owner));
        self.deps.broker.publish(ClusterEvent::with_frame(
            EventKind::Message { conversation: id, seq, sender, change: cluster_change, archived },
            frame.clone(),
        ));
        let membership = change.map(|change| Membership::from((change, appended.new_owner)));
        self.apply_commit(seq, sender, membership, archived, frame, ctx, move |act| {
            if change.is_some() || archived.is_some() {
                let left = match change {
                    Some(MembershipChange::Remove(user)) => Some(user),
                    _ => None,
                };
                act.announce_conversation(left);
            }
            let _ = reply.send(Ok(message));
        });
    }

    /// A message committed, here or on another node: the live state follows (the conversation
    /// archived or restored with it, if it was), the sender's typing ends, recipients' unread
    /// counts are queued, a newcomer is admitted, and the message is delivered in order (a
    /// leaver leaves after it); then `then`.
    #[allow(clippy::too_many_arguments)] // the parts of one committed message, as both paths have them
    pub(super) fn apply_commit(
        &mut self,
        seq: Seq,
        sender: UserId,
        membership: Option<Membership>,
        archived: Option<bool>,
        frame: Frame,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self) + 'static,
    ) {
        let State::Live(live) = &mut self.state else { return };
        if let Some(archived) = archived {
            live.archived = archived;
        }
        let effects = live.apply_committed(seq, sender, membership);
        if effects.typing_ended {
            self.typing_updated(sender, false);
        }
        self.unread.queue(effects.unread);
        self.flush_unread(ctx);
        if let Some((user, role)) = effects.admit {
            return self.admit(user, role, seq, frame, ctx, then);
        }
        self.deliver_in_order(seq, frame, ctx); // the leaver sees their leaving too
        if let Some(leave) = effects.leave
            && let Some(now) = self.order.leave_after(seq, leave)
        {
            self.run_steps(vec![Step::Leave(now)]);
        }
        then(self);
    }

    /// `user` joined with message `seq`: delivers it once the newcomer's sessions are known (the
    /// actor waits for Presence, and nothing else of this conversation runs meanwhile), then
    /// runs `then`.
    fn admit(
        &mut self,
        user: UserId,
        role: Role,
        seq: Seq,
        frame: Frame,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self) + 'static,
    ) {
        let watch = Watch { conversation: self.id, users: vec![user], watcher: ctx.address().downgrade().recipient() };
        ctx.wait(self.deps.presence.send(watch).into_actor(self).map(move |sessions, act, ctx| {
            if let State::Live(live) = &mut act.state {
                let sessions = sessions.ok().and_then(|mut s| s.remove(&user)).unwrap_or_default();
                live.admit(user, role, seq, sessions);
            }
            act.deliver_in_order(seq, frame, ctx);
            then(act);
        }));
    }

    /// `conversation:updated` to everyone concerned (and to `left`, who just left, so that
    /// their clients drop it), each with their own unread count.
    pub(super) fn announce_conversation(&mut self, left: Option<UserId>) {
        let Ok(live) = self.live() else { return };
        let mut users = live.users();
        if let Some(user) = left
            && !users.contains(&user)
        {
            users.push(user);
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
                        log::warn!("conversation {id}: cannot announce a change: {err}")
                    }
                }
            }
        });
    }

    /// After a read marker committed: `unread:updated` to the reader, `read:updated` (the read
    /// receipt) to every member; nothing to announce when it did not move.
    fn marker_committed(&mut self, user: UserId, seq: Seq, moved: bool, total: i64) -> Result<ReadState> {
        let id = self.id;
        let unread = Unread { count: self.live()?.set_marker(user, seq)?, total };
        let state = ReadState { last_read_seq: seq, unread_count: unread.count, total_unread: unread.total };
        if moved {
            let kind =
                EventKind::Read { conversation: id, user, seq, unread_count: unread.count, total_unread: unread.total };
            self.deps.broker.publish(ClusterEvent::new(kind));
            self.read_moved(user, seq, unread);
        }
        Ok(state)
    }

    /// `unread:updated` to the reader's sessions here, `read:updated` to every member's.
    pub(super) fn read_moved(&mut self, user: UserId, seq: Seq, unread: Unread) {
        let id = self.id;
        let State::Live(live) = &mut self.state else { return };
        let Some(sessions) = live.marker_moved(user, seq) else { return };
        let unread = Event::unread_updated(id, unread).encode();
        for session in sessions {
            session.deliver(&unread);
        }
        let receipt = Event::ReadUpdated { conversation_id: id, user_id: user, last_read_seq: seq }.encode();
        match live.receipt_audience(user) {
            // An observer's own devices follow their marker; nobody else hears of it.
            Some(observer) => live.sessions_of(observer).iter().for_each(|s| s.deliver(&receipt)),
            None => drop(self.broadcast(&receipt, None)),
        }
    }

    /// Sends the queued `unread:updated`, at the pace `UnreadUpdates` sets.
    fn flush_unread(&mut self, ctx: &mut Context<Self>) {
        let users = match self.unread.flush(Instant::now(), self.deps.limits.unread_interval()) {
            Flush::Idle => return,
            Flush::Wait(wait) => {
                ctx.run_later(wait, |act, ctx| {
                    act.unread.waited();
                    act.flush_unread(ctx);
                });
                return;
            }
            Flush::Query(users) => users,
        };
        let State::Live(live) = &self.state else {
            return self.unread.answered();
        };
        // Counts are taken now, before the totals query starts, so that a total is never below
        // the count it comes with; any later change is in the next round.
        let counts = live.unread_counts(users);
        let users: Vec<UserId> = counts.iter().map(|(u, _)| *u).collect();
        let (store, id) = (self.deps.store.clone(), self.id);
        ctx.spawn(async move { store.unread_totals(&users).await }.into_actor(self).map(move |totals, act, ctx| {
            act.unread.answered();
            match totals {
                Ok(totals) => {
                    if let State::Live(live) = &act.state {
                        for (user, count) in counts {
                            let unread = with_total(count, totals.get(&user).copied());
                            let frame = Event::unread_updated(id, unread).encode();
                            for session in live.sessions_of(user) {
                                session.deliver(&frame);
                            }
                        }
                    }
                }
                Err(err) => log::warn!("conversation {id}: cannot compute unread totals: {err}"),
            }
            act.flush_unread(ctx);
        }));
    }

    /// Delivers message `seq` (with everything it unblocks) to this node's sessions, or holds
    /// it until the messages before it are here.
    fn deliver_in_order(&mut self, seq: Seq, frame: Frame, ctx: &mut Context<Self>) {
        if self.deps.gap_wait.is_none() {
            return self.run_steps(vec![Step::Deliver(frame)]);
        }
        let released = self.order.offer(seq, frame);
        self.released(released, ctx);
    }

    /// Runs what the sequencer released, and starts the gap timer it asks for.
    fn released(&mut self, released: Released, ctx: &mut Context<Self>) {
        self.run_steps(released.steps);
        let wait = match released.gap {
            None => return,
            Some(GapCheck::Now) => std::time::Duration::ZERO,
            Some(GapCheck::AfterWait) => self.deps.gap_wait.unwrap_or_default(),
        };
        ctx.run_later(wait, |act, ctx| act.fill_gap(ctx));
    }

    /// `message:new` to every member session here, the sender's own included (counted); a
    /// leaver leaves the member list.
    fn run_steps(&mut self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Deliver(frame) => {
                    let sessions = self.broadcast(&frame, None);
                    metrics::counter!(crate::metrics::MESSAGES_DELIVERED).increment(sessions as u64);
                }
                Step::Leave(leave) => {
                    if let State::Live(live) = &mut self.state {
                        live.remove(leave);
                    }
                    self.deps.presence.do_send(Unwatch { conversation: self.id, users: vec![leave.user] });
                }
            }
        }
    }

    /// The gap timer fired: reads what is still missing from the database.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let (after, before, limit) = match self.order.gap_due() {
            GapDue::Closed(released) => return self.released(released, ctx),
            GapDue::Missing { after, before, limit } => (after, before, limit),
        };
        metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
        let (store, id) = (self.deps.store.clone(), self.id);
        let read = async move { store.history(id, Some(before), Some(after), limit).await };
        ctx.spawn(read.into_actor(self).map(move |page, act, ctx| {
            let released = match page {
                Ok(page) => {
                    // A missed membership change: the member list here is out of date.
                    if page.messages.iter().any(|m| m.kind == MessageKind::System) {
                        act.reload_members(ctx);
                    }
                    if page.messages.is_empty() {
                        log::warn!(
                            "conversation {id}: seqs {} to {} are not in the database",
                            after.next(),
                            before.prev()
                        );
                    }
                    let messages = page.messages.iter().map(|m| (m.seq, Event::MessageNew { message: m }.encode()));
                    act.order.filled(messages.collect(), before)
                }
                Err(err) => {
                    log::warn!("conversation {id}: cannot fill seqs {} to {}: {err}", after.next(), before.prev());
                    act.order.fill_failed(before)
                }
            };
            act.released(released, ctx);
        }));
    }
}
