//! The service API, `/api/service/*` (docs/PROTOCOL.md §7): the host product's backend
//! provisions its users by their own ids, opens conversations about its business objects,
//! posts system messages, archives and restores, and pushes its own events. Every handler
//! takes a [`ServiceCaller`](crate::auth::ServiceCaller): a service key, never a user's token.
//! What it changes goes through the same paths as a user's requests (the conversation's actor
//! for writes, Presence for user-addressed events), so order, idempotency and the cluster's
//! promises are the same.

pub mod conversations;
pub mod users;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::protocol::{Event, Frame};
use crate::rules;
use crate::store::{Store, UserRow};
use crate::system_messages::check_name;
use crate::types::ConversationId;

/// `{name, payload}`: a host's event, for a user's or a conversation's sessions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    name: String,
    payload: Box<RawValue>,
}

impl EventBody {
    /// The `custom` frame, once checked.
    fn frame(&self, conversation_id: Option<ConversationId>) -> Result<Frame> {
        check_name("name", &self.name)?;
        rules::event_payload(&self.payload)?;
        Ok(Event::Custom { name: &self.name, conversation_id, payload: &self.payload }.encode())
    }
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The user the host knows as `external_id`; 404 when it provisioned none.
async fn user(store: &Store, external_id: &str) -> Result<UserRow> {
    store.user_by_external_id(external_id).await?.ok_or_else(|| Error::NotFound("no such user".into()))
}
