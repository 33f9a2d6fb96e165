//! The built-in admin accounts (`PARLEY_ADMIN_USERS`). Their names cannot be taken by open
//! registration: otherwise whoever registers a name first on a fresh server (in any case:
//! `ADMIN` is `admin`) gets the admin role. Their accounts are made by the operator instead, from
//! `PARLEY_ADMIN_PASSWORD_HASH`, when the server starts.

use argon2::PasswordHash;

use super::password::normalize_username;
use crate::error::{Error, Result};
use crate::store::{Store, UserRow};
use crate::types::UserId;

/// Is `username` (already normalized) one of the admin names?
pub fn is_admin_name(admin_users: &[String], username: &str) -> bool {
    admin_users.iter().any(|a| a.trim().eq_ignore_ascii_case(username))
}

/// Checks the admin settings (before the database is touched): the hash must be a PHC string
/// and every admin name a valid username.
pub fn check_settings(admin_users: &[String], password_hash: Option<&str>) -> Result<()> {
    if let Some(hash) = password_hash {
        PasswordHash::new(hash).map_err(|err| {
            Error::bad_request(format!("PARLEY_ADMIN_PASSWORD_HASH is not a PHC hash string ($argon2id$...): {err}"))
        })?;
        for name in admin_users {
            normalize_username(name.trim())
                .map_err(|err| Error::bad_request(format!("PARLEY_ADMIN_USERS: {name:?}: {err}")))?;
        }
    }
    Ok(())
}

/// Gives each admin name that has no account one with `password_hash` (checked by
/// [`check_settings`]). An account that exists is left as it is, its password included.
pub async fn provision(store: &Store, admin_users: &[String], password_hash: Option<&str>) -> Result<()> {
    let Some(hash) = password_hash else {
        if !admin_users.is_empty() {
            log::info!("PARLEY_ADMIN_PASSWORD_HASH is not set: admin names without an account stay without one");
        }
        return Ok(());
    };
    for name in admin_users {
        let username = normalize_username(name.trim())?;
        if store.user_by_username(&username).await?.is_some() {
            continue;
        }
        let row = UserRow {
            password_hash: Some(hash.to_string()),
            ..UserRow::new(UserId(uuid::Uuid::new_v4()), username.clone(), username)
        };
        match store.create_user(&row).await {
            // Another node made it at the same moment.
            Ok(()) | Err(Error::Conflict(_)) => log::info!("admin account {} is ready", row.username),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
