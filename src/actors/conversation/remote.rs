//! What another node committed in this conversation, as its actor here applies it: the live
//! state follows (last seq, members, read markers, typing), and this node's sessions are told,
//! exactly as if the write had been made here. Nothing is written and nothing is published
//! again: the node that committed did both.

use actix::prelude::*;

use super::{ConversationActor, MemberState, State};
use crate::actors::presence::{Unwatch, Watch};
use crate::cluster::{Change, ClusterEvent, EventKind};
use crate::error::Error;
use crate::protocol::{Event, Frame};
use crate::types::UserId;

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
            (EventKind::Message { seq, sender, change, .. }, Some(frame)) => {
                self.remote_message(seq, sender, change, frame, ctx)
            }
            (EventKind::Typing { user, typing, .. }, _) => {
                if matches!(&self.state, State::Live(live) if live.members.contains_key(&user)) {
                    self.apply_typing(user, typing, ctx);
                }
            }
            (EventKind::Read { user, seq, unread_count, total_unread, .. }, _) => {
                self.read_moved(user, seq, unread_count, total_unread)
            }
            (header, _) => log::warn!("conversation {}: unexpected cluster event {header:?}", self.id),
        }
    }

    fn remote_message(
        &mut self,
        seq: i64,
        sender: UserId,
        change: Option<Change>,
        frame: Frame,
        ctx: &mut Context<Self>,
    ) {
        let id = self.id;
        let State::Live(live) = &mut self.state else { return };
        live.last_seq = live.last_seq.max(seq);
        if let Some(member) = live.members.get_mut(&sender) {
            member.last_read_seq = member.last_read_seq.max(seq); // sending reads up to one's own message
        }
        if live.typing.remove(&sender).is_some() {
            self.broadcast(
                &Event::TypingUpdated { conversation_id: id, user_id: sender, typing: false }.encode(),
                Some(sender),
            );
        }
        self.queue_unread(sender, ctx);
        match change {
            None => self.deliver_in_order(seq, frame, ctx),
            Some(Change::Add(user)) if !live_has(&self.state, user) => self.admit(user, seq, frame, ctx, |_| {}),
            Some(Change::Add(_)) => self.deliver_in_order(seq, frame, ctx), // loaded with them already
            Some(Change::Remove { user, new_owner }) => {
                self.deliver_in_order(seq, frame, ctx);
                self.remove_member_after(seq, user, new_owner);
            }
        }
    }
}

fn live_has(state: &State, user: UserId) -> bool {
    matches!(state, State::Live(live) if live.members.contains_key(&user))
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

impl ConversationActor {
    /// Reads the members again from the database (the truth), when this node may have missed
    /// a change made on another: the broker was away, a gap fill read a membership message, or
    /// the store refused a sender this actor took for a member. Members who left are dropped
    /// (with their typing), newcomers are watched, and everyone's role and read marker follow.
    pub(super) fn reload_members(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Live(_)) {
            return;
        }
        let (id, store, presence) = (self.id, self.deps.store.clone(), self.deps.presence.clone());
        let watcher = ctx.address().downgrade().recipient();
        let reload = async move {
            let rows = store.members(id).await?;
            let users = rows.iter().map(|m| m.user_id).collect();
            let sessions =
                presence.send(Watch { conversation: id, users, watcher }).await.map_err(|_| Error::ActorStopped)?;
            Ok::<_, Error>((rows, sessions))
        };
        ctx.spawn(reload.into_actor(self).map(move |reloaded, act, _| {
            let (rows, mut sessions) = match reloaded {
                Ok(reloaded) => reloaded,
                Err(err) => return log::warn!("conversation {id}: cannot reload the members: {err}"),
            };
            let State::Live(live) = &mut act.state else { return };
            let gone: Vec<UserId> =
                live.members.keys().filter(|user| !rows.iter().any(|row| row.user_id == **user)).copied().collect();
            for user in &gone {
                live.members.remove(user);
                live.typing.remove(user);
            }
            for row in rows {
                // The sessions as Presence knows them now; later ones arrive as `MemberSessions`.
                let sessions = sessions.remove(&row.user_id).unwrap_or_default();
                let member = live.members.entry(row.user_id).or_insert(MemberState {
                    role: row.role,
                    last_read_seq: row.last_read_seq,
                    sessions: Vec::new(),
                });
                member.role = row.role;
                member.last_read_seq = member.last_read_seq.max(row.last_read_seq);
                member.sessions = sessions;
            }
            if !gone.is_empty() {
                log::info!("conversation {id}: {} member(s) left on another node meanwhile", gone.len());
                act.deps.presence.do_send(Unwatch { conversation: id, users: gone });
            }
        }));
    }
}
