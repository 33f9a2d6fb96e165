//! Conversation actors follow their members' sessions here: [`Watch`] answers the sessions a
//! member has now and keeps the actor informed of each one that opens or closes
//! ([`MemberSessions`]), so that a broadcast never has to ask anyone.

use std::collections::HashMap;

use actix::WeakRecipient;
use actix::prelude::*;

use super::Presence;
use crate::actors::outgoing::SessionHandle;
use crate::types::{ConversationId, SessionId, UserId};

/// Sent to conversation actors when a session of one of their members opens or closes.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum MemberSessions {
    Joined(SessionHandle),
    Left { user: UserId, session: SessionId },
}

/// A conversation actor asks to follow the sessions of `users`; the answer is their sessions now.
#[derive(Message)]
#[rtype(result = "HashMap<UserId, Vec<SessionHandle>>")]
pub struct Watch {
    pub conversation: ConversationId,
    pub users: Vec<UserId>,
    pub watcher: WeakRecipient<MemberSessions>,
}

/// A conversation actor stops following `users` (they left, or the actor stops).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub conversation: ConversationId,
    pub users: Vec<UserId>,
}

/// The conversation actors that want to hear about each user's sessions.
#[derive(Default)]
pub(super) struct Watchers(HashMap<UserId, HashMap<ConversationId, WeakRecipient<MemberSessions>>>);

impl Watchers {
    /// Tells every live watcher of `user`; forgets those that stopped.
    pub fn notify(&mut self, user: UserId, change: MemberSessions) {
        if let Some(watchers) = self.0.get_mut(&user) {
            watchers.retain(|_, watcher| match watcher.upgrade() {
                Some(recipient) => {
                    recipient.do_send(change.clone());
                    true
                }
                None => false,
            });
            if watchers.is_empty() {
                self.0.remove(&user);
            }
        }
    }

    fn watch(&mut self, user: UserId, conversation: ConversationId, watcher: WeakRecipient<MemberSessions>) {
        self.0.entry(user).or_default().insert(conversation, watcher);
    }

    fn unwatch(&mut self, user: UserId, conversation: ConversationId) {
        if let Some(watchers) = self.0.get_mut(&user) {
            watchers.remove(&conversation);
            if watchers.is_empty() {
                self.0.remove(&user);
            }
        }
    }
}

impl Handler<Watch> for Presence {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) -> Self::Result {
        let mut sessions = HashMap::new();
        for user in msg.users {
            self.watchers.watch(user, msg.conversation, msg.watcher.clone());
            if self.sessions.is_online(user) {
                sessions.insert(user, self.sessions.of(user).to_vec());
            }
        }
        MessageResult(sessions)
    }
}

impl Handler<Unwatch> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Self::Context) {
        for user in msg.users {
            self.watchers.unwatch(user, msg.conversation);
        }
    }
}
