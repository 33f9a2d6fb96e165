//! The live state of a conversation, as its actor holds it: the kind, the last `seq`, the
//! members (role, read marker, sessions on this node) and who is typing until when. Every
//! change to it is a method here, the same whether the write was committed on this node or on
//! another; the methods answer what must follow (who to tell, whom to admit or drop) and leave
//! the telling to the actor. No actix, no I/O: the unit tests below run it as it is.
//!
//! `Live` is generic over what a session is, so that the tests need no socket; the actor uses
//! [`SessionHandle`].
//!
//! Past 400 lines only because a third of the file is its unit tests.

use std::collections::HashMap;
use std::time::Instant;

use crate::actors::outgoing::SessionHandle;
use crate::error::{Error, Result};
use crate::protocol::{ConversationKind, Role};
use crate::store::MembershipChange;
use crate::store::models::MemberRow;
use crate::types::{Seq, SessionId, UserId};

pub(super) struct Live<S = SessionHandle> {
    pub(super) kind: ConversationKind,
    pub(super) last_seq: Seq,
    /// Read-only: sends, typing and membership changes are refused.
    pub(super) archived: bool,
    members: HashMap<UserId, Member<S>>,
    /// Typists and when their typing ends by itself.
    typing: HashMap<UserId, Instant>,
}

pub(super) struct Member<S> {
    role: Role,
    last_read_seq: Seq,
    sessions: Vec<S>,
}

/// A member who left with a message, and the member who owns the group since (chosen by the
/// store in the same transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Leave {
    pub(super) user: UserId,
    pub(super) new_owner: Option<UserId>,
}

/// A membership change as a committed message carries it, wherever it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    /// Joined as a member, or as an observer.
    Add(UserId, Role),
    Remove(Leave),
}

/// What a committed message asks of the actor besides delivering it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Committed {
    /// The sender was typing: the message ended it, and the others are told.
    pub(super) typing_ended: bool,
    /// Members whose unread count went up and who have a session here to tell.
    pub(super) unread: Vec<UserId>,
    /// A newcomer (and their role) whose sessions must be found before the message is delivered.
    pub(super) admit: Option<(UserId, Role)>,
    /// A member who leaves once the message is delivered here.
    pub(super) leave: Option<Leave>,
}

impl<S: Clone> Live<S> {
    /// A conversation as loaded, with no members yet (they come with [`Live::reload`]).
    pub(super) fn new(kind: ConversationKind, last_seq: Seq, archived: bool) -> Self {
        Live { kind, last_seq, archived, members: HashMap::new(), typing: HashMap::new() }
    }

    pub(super) fn is_member(&self, user: UserId) -> bool {
        self.members.contains_key(&user)
    }

    fn is_observer(&self, user: UserId) -> bool {
        self.members.get(&user).is_some_and(|m| m.role == Role::Observer)
    }

    /// May `user` (a member) write here: post, type, upload? Not an observer, and not while
    /// the conversation is archived.
    pub(super) fn check_post(&self, user: UserId, what: &str) -> Result<()> {
        if self.is_observer(user) {
            return Err(Error::Forbidden(format!("observers cannot {what}")));
        }
        self.check_open()
    }

    /// Refuses any change to an archived conversation.
    pub(super) fn check_open(&self) -> Result<()> {
        if self.archived { Err(Error::archived()) } else { Ok(()) }
    }

    /// Whom a move of `user`'s read marker is told to: everyone's sessions, or only their own
    /// for an observer (observers never appear in read receipts).
    pub(super) fn receipt_audience(&self, user: UserId) -> Option<UserId> {
        self.is_observer(user).then_some(user)
    }

    pub(super) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(super) fn users(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }

    /// The member list as the database has it now (`rows`), with each member's sessions on this
    /// node as Presence knows them (later ones arrive one by one). Members who are gone are
    /// dropped with their typing and returned; a read marker never moves back.
    pub(super) fn reload(&mut self, rows: Vec<MemberRow>, mut sessions: HashMap<UserId, Vec<S>>) -> Vec<UserId> {
        let gone: Vec<UserId> =
            self.members.keys().filter(|user| !rows.iter().any(|row| row.user_id == **user)).copied().collect();
        for user in &gone {
            self.members.remove(user);
            self.typing.remove(user);
        }
        for row in rows {
            let member = self.members.entry(row.user_id).or_insert(Member {
                role: row.role,
                last_read_seq: row.last_read_seq,
                sessions: Vec::new(),
            });
            member.role = row.role;
            member.last_read_seq = member.last_read_seq.max(row.last_read_seq);
            member.sessions = sessions.remove(&row.user_id).unwrap_or_default();
        }
        gone
    }

    /// Message `seq` of `sender` committed (here or on another node), with `change` if it
    /// announces one. The one place where a commit changes the live state.
    pub(super) fn apply_committed(&mut self, seq: Seq, sender: UserId, change: Option<Membership>) -> Committed {
        self.last_seq = self.last_seq.max(seq);
        if let Some(member) = self.members.get_mut(&sender) {
            // Sending reads up to one's own message. `max`, not `= seq`: a marker never moves
            // back, and the sender may have read further already (a later message of another
            // node delivered first, or a `read:mark` that committed before this event came).
            member.last_read_seq = member.last_read_seq.max(seq);
        }
        let typing_ended = self.typing.remove(&sender).is_some();
        let unread = self
            .members
            .iter()
            .filter(|(user, member)| **user != sender && !member.sessions.is_empty())
            .map(|(user, _)| *user)
            .collect();
        let (admit, leave) = match change {
            // Already here: this actor loaded (or reloaded) with them.
            Some(Membership::Add(user, role)) => (Some((user, role)).filter(|(user, _)| !self.is_member(*user)), None),
            Some(Membership::Remove(leave)) => (None, Some(leave)),
            None => (None, None),
        };
        Committed { typing_ended, unread, admit, leave }
    }

    /// `user` joined with message `seq`: everything before it counts as read for them.
    pub(super) fn admit(&mut self, user: UserId, role: Role, seq: Seq, sessions: Vec<S>) {
        self.members.insert(user, Member { role, last_read_seq: seq.prev(), sessions });
    }

    /// `leave.user` left; `leave.new_owner` owns the group now.
    pub(super) fn remove(&mut self, leave: Leave) {
        self.members.remove(&leave.user);
        self.typing.remove(&leave.user);
        if let Some(owner) = leave.new_owner.and_then(|id| self.members.get_mut(&id)) {
            owner.role = Role::Owner;
        }
    }

    /// May `by` (`None`: the service) add `user` as `role`? The owner of a group or the
    /// service; a newcomer only, within the size limit. Only the service adds observers, to any
    /// conversation; members join groups only.
    pub(super) fn check_add(
        &self,
        by: Option<UserId>,
        user: UserId,
        role: Role,
        limits: &crate::config::Limits,
    ) -> Result<()> {
        self.check_open()?;
        match by {
            Some(by) if !self.group_owned_by(by)? => {
                return Err(Error::Forbidden("only the group's owner adds members".into()));
            }
            Some(_) => {}
            None if role == Role::Member && self.kind != ConversationKind::Group => {
                return Err(Error::bad_request("a direct conversation has fixed members: add an observer"));
            }
            None => {}
        }
        if self.is_member(user) {
            return Err(Error::Conflict("already a member".into()));
        }
        crate::rules::group_size(limits, self.members.len() + 1)
    }

    /// May `by` (`None`: the service) remove `user`? Oneself (leaving) or, for the owner,
    /// anyone of the group; the service anyone of a group, and observers anywhere.
    pub(super) fn check_remove(&self, by: Option<UserId>, user: UserId) -> Result<()> {
        self.check_open()?;
        match by {
            Some(by) if !self.group_owned_by(by)? && by != user => {
                return Err(Error::Forbidden("only the group's owner removes other members".into()));
            }
            None if self.kind != ConversationKind::Group && !self.is_observer(user) && self.is_member(user) => {
                return Err(Error::bad_request("a direct conversation has fixed members"));
            }
            _ => {}
        }
        if !self.is_member(user) {
            return Err(Error::NotFound("not a member".into()));
        }
        Ok(())
    }

    /// May `by` (`None`: the service) archive or restore? The service any conversation, the
    /// owner their group.
    pub(super) fn check_archive(&self, by: Option<UserId>) -> Result<()> {
        let Some(by) = by else { return Ok(()) };
        if self.kind != ConversationKind::Group {
            return Err(Error::Forbidden("only the service archives a direct conversation".into()));
        }
        if !self.group_owned_by(by)? {
            return Err(Error::Forbidden("only the group's owner archives it".into()));
        }
        Ok(())
    }

    /// The check common to adding and removing members: a group, `by` a member of it. Says
    /// whether `by` owns it.
    fn group_owned_by(&self, by: UserId) -> Result<bool> {
        let member = self.members.get(&by).ok_or_else(Error::no_conversation)?;
        if self.kind != ConversationKind::Group {
            return Err(Error::bad_request("a direct conversation has fixed members"));
        }
        Ok(member.role == Role::Owner)
    }

    /// Where `read:mark` (or, with `unread`, `POST /unread`) puts `user`'s marker, and whether
    /// that moves it: forward to `seq` (default: the latest), or back to just before `seq`.
    pub(super) fn marker_target(&self, user: UserId, seq: Option<Seq>, unread: bool) -> Result<(Seq, bool)> {
        let last_seq = self.last_seq;
        let current = self.members.get(&user).map_or(Seq::ZERO, |m| m.last_read_seq);
        let target = match (unread, seq) {
            (false, None) => last_seq,
            // Forward only: an older seq leaves the marker where it is.
            (false, Some(seq)) if (Seq::ZERO..=last_seq).contains(&seq) => seq.max(current),
            (true, Some(seq)) if Seq::ZERO < seq && seq <= last_seq => seq.prev(),
            (true, None) => return Err(Error::bad_request("seq is required")),
            (_, Some(_)) => {
                return Err(Error::bad_request(format!(
                    "seq must be a message of this conversation (1 to {last_seq})"
                )));
            }
        };
        Ok((target, target != current))
    }

    /// `user`'s marker committed at `seq` here (back too, for `unread`); their unread count.
    pub(super) fn set_marker(&mut self, user: UserId, seq: Seq) -> Result<i64> {
        let last_seq = self.last_seq;
        let member = self.members.get_mut(&user).ok_or_else(Error::no_conversation)?;
        member.last_read_seq = seq;
        Ok(last_seq.since(seq))
    }

    /// `user`'s marker moved to `seq` on another node: it follows, never back. Their sessions.
    pub(super) fn marker_moved(&mut self, user: UserId, seq: Seq) -> Option<&[S]> {
        let member = self.members.get_mut(&user)?;
        member.last_read_seq = member.last_read_seq.max(seq);
        Some(&member.sessions)
    }

    /// Each of `users` still a member, with their unread count now.
    pub(super) fn unread_counts(&self, users: impl IntoIterator<Item = UserId>) -> Vec<(UserId, i64)> {
        users
            .into_iter()
            .filter_map(|u| self.members.get(&u).map(|m| (u, self.last_seq.since(m.last_read_seq))))
            .collect()
    }

    /// `user` types until `until`; says whether they were not typing before.
    pub(super) fn start_typing(&mut self, user: UserId, until: Instant) -> bool {
        self.typing.insert(user, until).is_none()
    }

    /// `user` stopped typing; says whether they were.
    pub(super) fn stop_typing(&mut self, user: UserId) -> bool {
        self.typing.remove(&user).is_some()
    }

    pub(super) fn is_typing(&self, user: UserId) -> bool {
        self.typing.contains_key(&user)
    }

    pub(super) fn anyone_typing(&self) -> bool {
        !self.typing.is_empty()
    }

    pub(super) fn typists(&self) -> Vec<UserId> {
        self.typing.keys().copied().collect()
    }

    /// Ends the typing whose time is up at `now`; says whose.
    pub(super) fn expire_typing(&mut self, now: Instant) -> Vec<UserId> {
        let expired: Vec<UserId> = self.typing.iter().filter(|(_, until)| **until <= now).map(|(u, _)| *u).collect();
        for user in &expired {
            self.typing.remove(user);
        }
        expired
    }

    /// The sessions of `user`, if a member.
    pub(super) fn sessions_of(&self, user: UserId) -> &[S] {
        self.members.get(&user).map_or(&[][..], |m| &m.sessions)
    }

    /// Every session of every member but `except`.
    pub(super) fn sessions_except(&self, except: Option<UserId>) -> impl Iterator<Item = &S> {
        self.members.iter().filter(move |(user, _)| Some(**user) != except).flat_map(|(_, m)| &m.sessions)
    }

    pub(super) fn session_count(&self) -> usize {
        self.members.values().map(|m| m.sessions.len()).sum()
    }
}

impl Live<SessionHandle> {
    /// A session of a member opened on this node.
    pub(super) fn session_joined(&mut self, session: SessionHandle) {
        if let Some(member) = self.members.get_mut(&session.user) {
            member.sessions.push(session);
        }
    }

    /// A session of `user` closed; says whether it was their last one here.
    pub(super) fn session_left(&mut self, user: UserId, session: SessionId) -> bool {
        let Some(member) = self.members.get_mut(&user) else { return false };
        member.sessions.retain(|s| s.id != session);
        member.sessions.is_empty()
    }
}

impl From<(MembershipChange, Option<UserId>)> for Membership {
    fn from((change, new_owner): (MembershipChange, Option<UserId>)) -> Membership {
        match change {
            MembershipChange::Add(user, role) => Membership::Add(user, role),
            MembershipChange::Remove(user) => Membership::Remove(Leave { user, new_owner }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConversationId, Timestamp};

    fn user() -> UserId {
        UserId(uuid::Uuid::new_v4())
    }

    fn row(user: UserId, role: Role, last_read_seq: i64) -> MemberRow {
        MemberRow {
            conversation_id: ConversationId(uuid::Uuid::nil()),
            user_id: user,
            role,
            last_read_seq: Seq(last_read_seq),
            joined_at: Timestamp::now(),
            hidden_seq: None,
        }
    }

    /// A group at seq 10: `owner` (read 10) and `other` (read 4, online with one session).
    fn group() -> (Live<()>, UserId, UserId) {
        let (owner, other) = (user(), user());
        let mut live = Live::new(ConversationKind::Group, Seq(10), false);
        let online = HashMap::from([(other, vec![()])]);
        live.reload(vec![row(owner, Role::Owner, 10), row(other, Role::Member, 4)], online);
        (live, owner, other)
    }

    #[test]
    fn a_commit_moves_the_senders_marker_forward_only_and_ends_their_typing() {
        let (mut live, owner, other) = group();
        live.start_typing(other, Instant::now());
        let effects = live.apply_committed(Seq(11), other, None);
        assert_eq!(live.last_seq, Seq(11));
        assert!(effects.typing_ended);
        assert_eq!(live.unread_counts([other]), vec![(other, 0)]);
        // The owner reads to 20 (on another node, say); their own message 12 arrives after.
        live.last_seq = Seq(20);
        live.set_marker(owner, Seq(20)).unwrap();
        let effects = live.apply_committed(Seq(12), owner, None);
        assert!(!effects.typing_ended);
        assert_eq!(live.unread_counts([owner]), vec![(owner, 0)], "the marker stays at 20");
        assert_eq!(live.last_seq, Seq(20), "last_seq never moves back either");
    }

    #[test]
    fn a_commit_names_the_online_recipients_whose_unread_count_changed() {
        let (mut live, owner, other) = group();
        assert_eq!(live.apply_committed(Seq(11), owner, None).unread, vec![other]);
        assert!(live.apply_committed(Seq(12), other, None).unread.is_empty(), "the owner has no session here");
    }

    #[test]
    fn membership_changes_admit_newcomers_once_and_leave_after_delivery() {
        let (mut live, owner, other) = group();
        let newcomer = user();
        let effects = live.apply_committed(Seq(11), owner, Some(Membership::Add(newcomer, Role::Member)));
        assert_eq!(effects.admit, Some((newcomer, Role::Member)));
        live.admit(newcomer, Role::Member, Seq(11), Vec::new());
        assert_eq!(live.unread_counts([newcomer]), vec![(newcomer, 1)], "the message that added them is unread");
        // The same change heard again (a reload came first): nothing to admit.
        assert_eq!(live.apply_committed(Seq(11), owner, Some(Membership::Add(newcomer, Role::Member))).admit, None);

        let leave = Leave { user: owner, new_owner: Some(other) };
        let effects = live.apply_committed(Seq(12), owner, Some(Membership::Remove(leave)));
        assert_eq!(effects.leave, Some(leave));
        assert!(live.is_member(owner), "the leaver stays until the message is delivered");
        live.remove(leave);
        assert!(!live.is_member(owner));
        assert!(
            live.check_add(Some(other), user(), Role::Member, &crate::config::Config::from_env().limits).is_ok(),
            "other owns it"
        );
    }

    #[test]
    fn observers_never_post_and_archived_conversations_take_nothing() {
        let (mut live, owner, other) = group();
        let watcher = user();
        live.admit(watcher, Role::Observer, Seq(11), Vec::new());
        assert!(matches!(live.check_post(watcher, "post"), Err(Error::Forbidden(_))));
        assert!(live.check_post(other, "post").is_ok());
        assert_eq!(live.receipt_audience(watcher), Some(watcher), "an observer's receipts are their own");
        assert_eq!(live.receipt_audience(other), None);
        let limits = crate::config::Config::from_env().limits;
        assert!(matches!(live.check_add(Some(owner), user(), Role::Observer, &limits), Ok(())));
        live.archived = true;
        assert!(matches!(live.check_post(other, "post"), Err(Error::Archived(_))));
        assert!(matches!(live.check_add(Some(owner), user(), Role::Member, &limits), Err(Error::Archived(_))));
        assert!(matches!(live.check_remove(Some(other), other), Err(Error::Archived(_))));
    }

    #[test]
    fn only_the_owner_adds_and_removes_others_but_anyone_leaves() {
        let (live, owner, other) = group();
        let limits = crate::config::Config::from_env().limits;
        assert!(matches!(live.check_add(Some(other), user(), Role::Member, &limits), Err(Error::Forbidden(_))));
        assert!(matches!(live.check_add(Some(owner), other, Role::Member, &limits), Err(Error::Conflict(_))));
        assert!(matches!(live.check_add(Some(user()), user(), Role::Member, &limits), Err(Error::NotFound(_))));
        assert!(matches!(live.check_remove(Some(other), owner), Err(Error::Forbidden(_))));
        assert!(live.check_remove(Some(other), other).is_ok());
        assert!(live.check_remove(Some(owner), other).is_ok());
        assert!(matches!(live.check_remove(Some(owner), user()), Err(Error::NotFound(_))));
    }

    #[test]
    fn read_markers_go_forward_unless_marked_unread() {
        let (live, _, other) = group();
        assert_eq!(live.marker_target(other, None, false).unwrap(), (Seq(10), true));
        assert_eq!(live.marker_target(other, Some(Seq(2)), false).unwrap(), (Seq(4), false), "forward only");
        assert_eq!(live.marker_target(other, Some(Seq(7)), false).unwrap(), (Seq(7), true));
        assert_eq!(live.marker_target(other, Some(Seq(3)), true).unwrap(), (Seq(2), true));
        assert!(live.marker_target(other, None, true).is_err());
        assert!(live.marker_target(other, Some(Seq(11)), false).is_err());
        assert!(live.marker_target(other, Some(Seq(0)), true).is_err());
    }

    #[test]
    fn a_reload_drops_who_left_and_never_moves_a_marker_back() {
        let (mut live, owner, other) = group();
        live.start_typing(other, Instant::now());
        let gone = live.reload(vec![row(owner, Role::Owner, 3)], HashMap::new());
        assert_eq!(gone, vec![other]);
        assert!(!live.is_typing(other));
        assert_eq!(live.unread_counts([owner, other]), vec![(owner, 0)]);
    }

    #[test]
    fn typing_expires_by_itself() {
        let (mut live, owner, other) = group();
        let now = Instant::now();
        assert!(live.start_typing(owner, now));
        assert!(!live.start_typing(owner, now), "a renewal changes nothing");
        live.start_typing(other, now + std::time::Duration::from_secs(60));
        assert_eq!(live.expire_typing(now), vec![owner]);
        assert_eq!(live.typists(), vec![other]);
    }
}
