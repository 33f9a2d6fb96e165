//! Event aliases (`PARLEY_SOCKETIO_ALIASES`): other names for Parley's commands and events, so
//! that a front-end written for its own Node server (`send_message`, `join-conversation`,
//! `new-message`) connects to Parley without renaming its events. The file is JSON:
//!
//! ```json
//! {"commands": {"send_message": "message:send", "sendMessage": "message:send"},
//!  "events": {"message:new": "new-message"}}
//! ```
//!
//! `commands` maps what the client emits onto Parley's command names (several names may map to
//! one); `events` renames what Parley emits. A name not in the file is Parley's own.
//! `deploy/socketio-aliases.json` holds the aliases of the front-ends Parley serves.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aliases {
    #[serde(default)]
    commands: HashMap<String, String>,
    #[serde(default)]
    events: HashMap<String, String>,
}

impl Aliases {
    /// From the file at `path`; a file that is not such JSON stops the start.
    pub fn load(path: &Path) -> Result<Aliases> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::bad_request(format!("cannot read the aliases {}: {err}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|err| Error::bad_request(format!("{} is not an aliases file: {err}", path.display())))
    }

    /// The Parley command a client's event `name` is.
    pub fn command<'a>(&'a self, name: &'a str) -> &'a str {
        self.commands.get(name).map_or(name, String::as_str)
    }

    /// The name Parley's event `name` goes out as.
    pub fn event<'a>(&'a self, name: &'a str) -> &'a str {
        self.events.get(name).map_or(name, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways_and_others_stay_parleys() {
        let aliases: Aliases = serde_json::from_str(
            r#"{"commands": {"send_message": "message:send", "sendMessage": "message:send"},
                "events": {"message:new": "new-message"}}"#,
        )
        .unwrap();
        assert_eq!(aliases.command("send_message"), "message:send");
        assert_eq!(aliases.command("sendMessage"), "message:send");
        assert_eq!(aliases.command("read:mark"), "read:mark");
        assert_eq!(aliases.event("message:new"), "new-message");
        assert_eq!(aliases.event("typing:updated"), "typing:updated");
    }

    #[test]
    fn the_shipped_file_is_an_aliases_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/socketio-aliases.json");
        let aliases = Aliases::load(&path).unwrap();
        assert_eq!(aliases.command("send-message"), "message:send");
    }
}
