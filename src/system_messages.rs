//! What `system` messages say (docs/PROTOCOL.md §2.9): Parley's own (a member added, removed or
//! leaving, an observer added, a file removed, the conversation archived or restored), rendered
//! in `PARLEY_LANGUAGE`, and the checks on those the host posts. Either way a system message is
//! a rendered `body` plus its [`SystemTemplate`] (the key, the parameters, the language), so a
//! client may show the body as it is or render the template in its own language.

use serde_json::{Map, Value};

use crate::config::Language;
use crate::error::{Error, Result};
use crate::protocol::{SystemTemplate, Templated, check_text};
use crate::types::UserId;

/// The longest template key and event name, in bytes.
const MAX_NAME: usize = 128;
/// Most parameters of a host's template, and their size once serialised.
const MAX_PARAMS: usize = 32;
const MAX_PARAMS_BYTES: usize = 4096;

/// Who did something, as a system message names them: `None` for the service (or the sweep),
/// which the messages then put in the passive voice ("Bob was added").
pub type Actor<'a> = Option<(UserId, &'a str)>;

/// Something Parley itself announces in a conversation.
pub enum Own<'a> {
    MemberAdded { by: Actor<'a>, user: (UserId, &'a str) },
    MemberRemoved { by: Actor<'a>, user: (UserId, &'a str) },
    MemberLeft { user: (UserId, &'a str) },
    ObserverAdded { user: (UserId, &'a str) },
    AttachmentRemoved { by: (UserId, &'a str), filename: &'a str },
    Archived { by: Actor<'a> },
    Restored { by: Actor<'a> },
}

impl Own<'_> {
    /// The body in `language`, and the template it was rendered from.
    pub fn render(&self, language: Language) -> (String, Templated) {
        let fr = language == Language::Fr;
        let mut params = Map::new();
        let mut name = |key: &str, (id, name): (UserId, &str)| {
            params.insert(key.into(), Value::from(name));
            params.insert(format!("{key}_id"), Value::from(id.to_string()));
        };
        let (template, body) = match *self {
            Own::MemberAdded { by, user } => {
                name("user", user);
                let u = user.1;
                let body = match by {
                    Some(by) => {
                        name("by", by);
                        if fr { format!("{} a ajouté {u}", by.1) } else { format!("{} added {u}", by.1) }
                    }
                    None if fr => format!("{u} a été ajouté·e"),
                    None => format!("{u} was added"),
                };
                ("parley.member_added", body)
            }
            Own::MemberRemoved { by, user } => {
                name("user", user);
                let u = user.1;
                let body = match by {
                    Some(by) => {
                        name("by", by);
                        if fr { format!("{} a retiré {u}", by.1) } else { format!("{} removed {u}", by.1) }
                    }
                    None if fr => format!("{u} a été retiré·e"),
                    None => format!("{u} was removed"),
                };
                ("parley.member_removed", body)
            }
            Own::MemberLeft { user } => {
                name("user", user);
                let u = user.1;
                ("parley.member_left", if fr { format!("{u} a quitté la conversation") } else { format!("{u} left") })
            }
            Own::ObserverAdded { user } => {
                name("user", user);
                let u = user.1;
                let body = if fr {
                    format!("{u} peut désormais lire cette conversation")
                } else {
                    format!("{u} can now read this conversation")
                };
                ("parley.observer_added", body)
            }
            Own::AttachmentRemoved { by, filename } => {
                name("by", by);
                params.insert("filename".into(), Value::from(filename));
                let b = by.1;
                let body = if fr { format!("{b} a supprimé {filename}") } else { format!("{b} removed {filename}") };
                ("parley.attachment_removed", body)
            }
            Own::Archived { by } => {
                let body = match by {
                    Some(by) => {
                        name("by", by);
                        if fr {
                            format!("{} a archivé cette conversation", by.1)
                        } else {
                            format!("{} archived this conversation", by.1)
                        }
                    }
                    None if fr => "Cette conversation a été archivée".into(),
                    None => "This conversation was archived".into(),
                };
                ("parley.archived", body)
            }
            Own::Restored { by } => {
                let body = match by {
                    Some(by) => {
                        name("by", by);
                        if fr {
                            format!("{} a restauré cette conversation", by.1)
                        } else {
                            format!("{} restored this conversation", by.1)
                        }
                    }
                    None if fr => "Cette conversation a été restaurée".into(),
                    None => "This conversation was restored".into(),
                };
                ("parley.restored", body)
            }
        };
        let lang = language_tag(language).into();
        (body, Templated(Some(SystemTemplate { template: template.into(), params, lang })))
    }
}

/// A system message of the host's: its template key, parameters and language are checked, and
/// its text is checked as a message body is (by the caller, with the send rules). The `parley.`
/// keys are Parley's own. Without `lang`, the server's language.
pub fn host_template(
    template: String,
    params: Map<String, Value>,
    lang: Option<String>,
    language: Language,
) -> Result<Templated> {
    check_name("template", &template)?;
    if template.starts_with("parley.") {
        return Err(Error::bad_request("templates named parley.* are Parley's own"));
    }
    if params.len() > MAX_PARAMS {
        return Err(Error::bad_request(format!("params has at most {MAX_PARAMS} entries")));
    }
    for (key, value) in &params {
        check_text("params", key)?;
        match value {
            Value::String(text) => check_text("params", text)?,
            Value::Number(_) => {}
            _ => return Err(Error::bad_request("params values are strings or numbers")),
        }
    }
    if serde_json::to_string(&params).map_or(usize::MAX, |s| s.len()) > MAX_PARAMS_BYTES {
        return Err(Error::bad_request(format!("params is at most {MAX_PARAMS_BYTES} bytes")));
    }
    let lang = lang.unwrap_or_else(|| language_tag(language).into());
    let tag_ok = (2..=35).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !tag_ok {
        return Err(Error::bad_request("lang is a language tag, such as fr or pt-BR"));
    }
    Ok(Templated(Some(SystemTemplate { template, params, lang })))
}

fn language_tag(language: Language) -> &'static str {
    match language {
        Language::En => "en",
        Language::Fr => "fr",
    }
}

/// A template key or an event name: 1 to 128 bytes of letters, digits, `.`, `_` and `-`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!("{field} is 1 to {MAX_NAME} letters, digits, '.', '_' or '-'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone(name: &str) -> (UserId, &str) {
        (UserId(uuid::Uuid::new_v4()), name)
    }

    #[test]
    fn own_messages_read_in_both_languages_with_their_parameters() {
        let (ann, bob) = (someone("Ann"), someone("Bob"));
        let added = Own::MemberAdded { by: Some(ann), user: bob };
        assert_eq!(added.render(Language::En).0, "Ann added Bob");
        let (body, templated) = added.render(Language::Fr);
        assert_eq!(body, "Ann a ajouté Bob");
        let template = templated.0.expect("a template");
        assert_eq!(template.template, "parley.member_added");
        assert_eq!(template.lang, "fr");
        assert_eq!(template.params["by"], "Ann");
        assert_eq!(template.params["user_id"], bob.0.to_string());
        assert_eq!(Own::MemberRemoved { by: None, user: bob }.render(Language::En).0, "Bob was removed");
        assert_eq!(Own::MemberLeft { user: bob }.render(Language::Fr).0, "Bob a quitté la conversation");
        assert_eq!(Own::Archived { by: None }.render(Language::Fr).0, "Cette conversation a été archivée");
        assert_eq!(Own::Restored { by: Some(ann) }.render(Language::En).0, "Ann restored this conversation");
    }

    #[test]
    fn a_host_template_is_checked() {
        let params = |v: Value| v.as_object().cloned().unwrap_or_default();
        let ok = host_template(
            "appointment.confirmed".into(),
            params(serde_json::json!({"date": "12 mars"})),
            None,
            Language::Fr,
        );
        assert_eq!(ok.unwrap().0.unwrap().lang, "fr", "the server's language by default");
        assert!(host_template("bad key".into(), Map::new(), None, Language::En).is_err());
        assert!(host_template("parley.member_added".into(), Map::new(), None, Language::En).is_err());
        assert!(host_template("x".into(), params(serde_json::json!({"a": {"b": 1}})), None, Language::En).is_err());
        assert!(host_template("x".into(), Map::new(), Some("f".into()), Language::En).is_err());
        assert!(host_template("x".into(), Map::new(), Some("pt-BR".into()), Language::En).is_ok());
    }
}
