//! In a cluster, a conversation's messages commit on several nodes, and each node hears of the
//! others' through the broker, so `message:new` can reach an actor out of `seq` order, or
//! never (the broker was down). [`Sequencer`] hands this node's sessions every `seq` once, in
//! order: a message ahead of a missing one is held; if the missing one has not come within
//! `PARLEY_GAP_WAIT_MS`, the actor reads the gap from the database, where every committed
//! message is, and delivers it (a gap fill). On a node alone the actor commits every message
//! itself, in order, and needs none of this.
//!
//! Where to start counting: an actor that has just loaded cannot know whether the events of
//! the last messages it read are still on their way (committed on another node a moment
//! before, published a moment after). It counts from its first message, or from one past what
//! it loaded, whichever is lower; an older event that arrives later was delivered by nobody
//! here (each event arrives once), so it is delivered then, late rather than never. Clients
//! keep messages by `seq` and id, so one arriving late takes its place.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::{ConversationActor, State};
use crate::protocol::{Event, Frame, MessageKind};
use crate::types::UserId;

/// Most messages held behind a gap before it is filled without waiting.
const MAX_HELD: usize = 1024;
/// Most messages read in one gap fill.
const FILL_PAGE: i64 = 500;

#[derive(Default)]
pub(super) struct Sequencer {
    /// The next `seq` to deliver; set by the first message after the actor loaded.
    next: Option<i64>,
    /// The first `seq` delivered: everything from here to `next` was, nothing below.
    first: i64,
    held: BTreeMap<i64, Frame>,
    /// Members who left with a message still held: they go once it is delivered, so that their
    /// sessions see their leaving, and nothing after it.
    removals: BTreeMap<i64, (UserId, Option<UserId>)>,
    /// A gap timer or fill is under way.
    filling: bool,
}

impl ConversationActor {
    /// Delivers message `seq` (with everything it unblocks) to this node's sessions, or holds
    /// it until the messages before it are here.
    pub(super) fn deliver_in_order(&mut self, seq: i64, frame: Frame, ctx: &mut Context<Self>) {
        if !self.deps.broker.is_clustered() {
            return self.broadcast_message(&frame);
        }
        let State::Live(live) = &self.state else { return };
        let next = *self.order.next.get_or_insert_with(|| {
            let first = seq.min(live.loaded_seq + 1);
            self.order.first = first;
            first
        });
        if seq < self.order.first {
            // Committed before this actor loaded, its event on its way meanwhile: nobody here
            // has delivered it.
            return self.broadcast_message(&frame);
        }
        if seq < next {
            return; // delivered already (a gap fill overtook its event)
        }
        self.order.held.insert(seq, frame);
        self.release(ctx);
    }

    /// `user` left with message `seq` (`new_owner` owns the group now): they leave the member
    /// list once that message is delivered here.
    pub(super) fn remove_member_after(&mut self, seq: i64, user: UserId, new_owner: Option<UserId>) {
        match self.order.next {
            Some(next) if seq >= next => {
                self.order.removals.insert(seq, (user, new_owner));
            }
            _ => self.remove_member(user, new_owner), // delivered (or a node alone: at once)
        }
    }

    /// Delivers the held messages that are next in line; waits for (or fills) a gap.
    fn release(&mut self, ctx: &mut Context<Self>) {
        let Some(mut next) = self.order.next else { return };
        while let Some(frame) = self.order.held.remove(&next) {
            self.broadcast_message(&frame);
            if let Some((user, new_owner)) = self.order.removals.remove(&next) {
                self.remove_member(user, new_owner);
            }
            next += 1;
        }
        self.order.next = Some(next);
        // Removals whose message was skipped (a gap that could not be filled) apply now.
        while let Some(entry) = self.order.removals.first_entry()
            && *entry.key() < next
        {
            let (user, new_owner) = entry.remove();
            self.remove_member(user, new_owner);
        }
        if self.order.held.is_empty() || self.order.filling {
            return;
        }
        self.order.filling = true;
        let wait =
            if self.order.held.len() > MAX_HELD { std::time::Duration::ZERO } else { self.deps.broker.gap_wait() };
        ctx.run_later(wait, |act, ctx| act.fill_gap(ctx));
    }

    /// Reads the messages between the next expected and the first held from the database.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let (Some(next), Some(&ahead)) = (self.order.next, self.order.held.keys().next()) else {
            self.order.filling = false;
            return;
        };
        if ahead <= next {
            // The missing messages came while we waited.
            self.order.filling = false;
            return self.release(ctx);
        }
        metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
        let (store, id) = (self.deps.store.clone(), self.id);
        let limit = (ahead - next).min(FILL_PAGE);
        ctx.spawn(async move { store.history(id, Some(ahead), Some(next - 1), limit).await }.into_actor(self).map(
            move |page, act, ctx| {
                act.order.filling = false;
                match page {
                    Ok(page) => {
                        for message in &page.messages {
                            act.order.held.entry(message.seq).or_insert_with(|| Event::MessageNew { message }.encode());
                        }
                        // A missed membership change: the member list here is out of date.
                        if page.messages.iter().any(|m| m.kind == MessageKind::System) {
                            act.reload_members(ctx);
                        }
                        // A page shorter than the gap leaves the rest to the next round; an empty
                        // one means the gap is not in the database (cannot happen: seqs are
                        // assigned in the committing transaction), so it is skipped.
                        if page.messages.is_empty() {
                            log::warn!("conversation {id}: seqs {next} to {} are not in the database", ahead - 1);
                            act.order.next = Some(ahead);
                        }
                    }
                    Err(err) => {
                        // Clients `sync` to fill what they missed; held messages are not kept back.
                        log::warn!("conversation {id}: cannot fill seqs {next} to {}: {err}", ahead - 1);
                        act.order.next = Some(ahead);
                    }
                }
                act.release(ctx);
            },
        ));
    }
}
