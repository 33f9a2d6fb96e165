//! Parley inside a host product (docs/PROTOCOL.md §7, docs/DEPLOYMENT.md "Inside a host
//! product"): the service keys, how the host's tokens name its users, and the policies that
//! close what a standalone install leaves open.
//!
//! Each policy has two defaults: open for a standalone install, closed for an embedded one. An
//! install is embedded when it has service keys: a host product then owns the users and the
//! conversations, and strangers must not find each other through Parley. A setting given
//! explicitly wins either way.

use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone)]
pub struct HostConfig {
    /// Keys of the host's backend for /api/service (comma-separated, each at least 32
    /// characters). Any listed key is accepted, so a key is rotated by adding the new one,
    /// moving the host to it, then removing the old one. Setting one makes the install embedded.
    #[arg(long = "service-keys", env = "PARLEY_SERVICE_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub service_keys: Vec<String>,

    /// `open` or `closed`: may people create accounts with /api/auth/register? (Default: open,
    /// or closed when embedded.)
    #[arg(long, env = "PARLEY_REGISTRATION")]
    pub registration: Option<Registration>,

    /// Who the directory shows: `open` (everyone), `contacts` (people one shares a
    /// conversation with) or `off`. (Default: open, or contacts when embedded.)
    #[arg(long, env = "PARLEY_DIRECTORY")]
    pub directory: Option<Directory>,

    /// Who opens conversations: `anyone`, or `service` (only /api/service). (Default: anyone,
    /// or service when embedded.)
    #[arg(long, env = "PARLEY_CONVERSATION_START")]
    pub conversation_start: Option<ConversationStart>,

    /// The claim of a host's token that names its user by the host's own id (`sub`, `userId`);
    /// a string or an integer. Unset: `sub` is a Parley user id.
    #[arg(long, env = "PARLEY_TOKEN_EXTERNAL_ID_CLAIM")]
    pub external_id_claim: Option<String>,

    /// The claim holding the display name of a user created from a token on first use.
    #[arg(long, env = "PARLEY_TOKEN_NAME_CLAIM", default_value = "name")]
    pub name_claim: String,

    /// The language of Parley's own system messages (`en` or `fr`).
    #[arg(long, env = "PARLEY_LANGUAGE", default_value = "en")]
    pub language: Language,

    /// Archive a conversation automatically this many days after its `context_ends_at`.
    /// Unset: never automatically.
    #[arg(long, env = "PARLEY_ARCHIVE_AFTER_DAYS")]
    pub archive_after_days: Option<u32>,

    /// How often the archival sweep looks for conversations due, in seconds.
    #[arg(long, env = "PARLEY_ARCHIVE_SWEEP_SECS", default_value_t = 60)]
    pub archive_sweep_secs: u64,

    /// Most conversations one sweep archives (the rest wait for the next sweep).
    #[arg(long, env = "PARLEY_ARCHIVE_BATCH", default_value_t = 100)]
    pub archive_batch: i64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    Closed,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directory {
    Open,
    Contacts,
    Off,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationStart {
    Anyone,
    Service,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Fr,
}

/// The policies in force, each resolved from its setting or its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub registration: Registration,
    pub directory: Directory,
    pub conversation_start: ConversationStart,
}

impl HostConfig {
    /// An install with service keys is embedded in a host product.
    pub fn embedded(&self) -> bool {
        !self.service_keys.is_empty()
    }

    pub fn policies(&self) -> Policies {
        let embedded = self.embedded();
        Policies {
            registration: self.registration.unwrap_or(if embedded { Registration::Closed } else { Registration::Open }),
            directory: self.directory.unwrap_or(if embedded { Directory::Contacts } else { Directory::Open }),
            conversation_start: self.conversation_start.unwrap_or(if embedded {
                ConversationStart::Service
            } else {
                ConversationStart::Anyone
            }),
        }
    }

    /// How long after its `context_ends_at` a conversation is archived, if ever.
    pub fn archive_after(&self) -> Option<Duration> {
        self.archive_after_days.map(|days| Duration::from_secs(u64::from(days) * 86_400))
    }
}
