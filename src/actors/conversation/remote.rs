//! What another node committed in this conversation, as its actor here applies it: the live
//! state follows (last seq, members, read markers, typing) through the same methods as a
//! commit made here, and this node's sessions are told, exactly as if the write had been made
//! here. Nothing is written and nothing is published again: the node that committed did both.

use actix::prelude::*;

use super::live::{Leave, Membership};
use super::{ConversationActor, State};
use crate::cluster::{Change, ClusterEvent, EventKind};
use crate::types::Unread;

/// An event of another node about this conversation (from the broker, through the registry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remote(pub ClusterEvent);

impl Handler<Remote> for ConversationActor {
    type Result = ();

    fn handle(&mut self, Remote(event): Remote, ctx: &mut Self::Context) {
        if self.retired {
            // Retiring: the registry has forgotten this actor, so a fresh one takes the event.
            if let Some(registry) = self.registry.upgrade()
                && let Err(err) = registry.remote(self.id, event)
            {
                log::warn!("conversation {}: an event of another node is lost: {err}", self.id);
            }
            return;
        }
        if !matches!(self.state, State::Live(_)) {
            return; // missing or unreadable here: sessions `sync` once it is back
        }
        self.touch();
        let _ = self.guarded(ctx, |act, ctx| act.remote(event, ctx));
    }
}

impl ConversationActor {
    fn remote(&mut self, event: ClusterEvent, ctx: &mut Context<Self>) {
        match (event.kind, event.frame) {
            (EventKind::Message { seq, sender, change, archived, .. }, Some(frame)) => {
                let membership = change.map(|change| match change {
                    Change::Add(user, role) => Membership::Add(user, role),
                    Change::Remove { user, new_owner } => Membership::Remove(Leave { user, new_owner }),
                });
                self.apply_commit(seq, sender, membership, archived, frame, ctx, |_| {});
            }
            (EventKind::Custom { .. }, Some(frame)) => drop(self.broadcast(&frame, None)),
            (EventKind::Typing { user, typing, .. }, _) => {
                if matches!(&self.state, State::Live(live) if live.is_member(user)) {
                    self.apply_typing(user, typing, ctx);
                }
            }
            (EventKind::Read { user, seq, unread_count, total_unread, .. }, _) => {
                self.read_moved(user, seq, Unread { count: unread_count, total: total_unread })
            }
            (kind, _) => log::warn!("conversation {}: unexpected cluster event {kind:?}", self.id),
        }
    }
}

/// The broker was away: events of other nodes may have been lost, membership changes among
/// them. Sent to every live actor when the node is connected again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        self.reload_members(ctx);
    }
}
