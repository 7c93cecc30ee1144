//! ACL users as the rotator reads and changes them (docs/protocol.md 5.13): a user's password
//! hashes and flags (`ACL GETUSER`), the password rules of each strategy with the rules that undo
//! them, and how the server keeps users (`CONFIG GET aclfile`).
//!
//! Only password rules are ever written (`#<hash>` adds one, `!<hash>` removes one, `resetpass`
//! removes all): a user's key, channel and command rules and its selectors are never part of a
//! change. Passwords travel as their SHA-256, which is how Redis stores them, so no plaintext
//! reaches the server's command stream (`MONITOR`, the slow log).

use std::fmt::{self, Write};

use ::redis::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of `password` in lower-case hex, as ACL rules and `ACL GETUSER` name it. Derived
/// from a password: never log it.
pub fn password_hash(password: &str) -> String {
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(password.as_bytes()) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// What the rotator reads of an ACL user. Its `Debug` counts the password hashes, never shows
/// them: each is the SHA-256 of a password.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct AclUser {
    /// `on`, `off`, `nopass`, `allkeys`, …
    pub(super) flags: Vec<String>,
    /// Password hashes, lower-case hex.
    pub(super) passwords: Vec<String>,
}

impl AclUser {
    /// From `ACL GETUSER`'s answer: alternating field names and values (RESP2) or a map (RESP3).
    /// `None` for `nil` (no such user) or an answer without `flags` and `passwords`.
    pub(super) fn from_value(value: &Value) -> Option<Self> {
        let fields: Vec<(&Value, &Value)> = match value {
            Value::Array(items) => items
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect(),
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| text(key).as_deref() == Some(name))
                .map(|(_, value)| strings(value))
        };
        Some(AclUser {
            flags: field("flags")??,
            passwords: field("passwords")??,
        })
    }

    /// The user accepts any password: rotating cannot revoke one.
    pub(super) fn nopass(&self) -> bool {
        self.flags.iter().any(|flag| flag == "nopass")
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().map(text).collect(),
        _ => None,
    }
}

/// The password rules of one change, and the rules that undo it. Its `Debug` counts the rules,
/// never shows them: each names a password's hash.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct PasswordChange {
    pub(super) rules: Vec<String>,
    pub(super) undo: Vec<String>,
}

impl fmt::Debug for AclUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclUser")
            .field("flags", &self.flags)
            .field("passwords", &self.passwords.len())
            .finish()
    }
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange")
            .field("rules", &self.rules.len())
            .field("undo", &self.undo.len())
            .finish()
    }
}

impl PasswordChange {
    /// Dual password: add `new`, keep `current`, remove every other hash the user has. Undone by
    /// removing `new` (unless it was there already) and adding back what was removed.
    pub(super) fn dual(user: &AclUser, current: &str, new: &str) -> Self {
        let removed: Vec<&String> = user
            .passwords
            .iter()
            .filter(|hash| *hash != current && *hash != new)
            .collect();
        let mut rules = vec![format!("#{new}")];
        rules.extend(removed.iter().map(|hash| format!("!{hash}")));
        let mut undo = Vec::new();
        if !user.passwords.iter().any(|hash| hash == new) {
            undo.push(format!("!{new}"));
        }
        undo.extend(removed.iter().map(|hash| format!("#{hash}")));
        PasswordChange { rules, undo }
    }

    /// Single user: the new password replaces every other (`resetpass`, which also clears
    /// `nopass`). Undone by restoring the password the session logged in with.
    pub(super) fn single(login: &str, new: &str) -> Self {
        PasswordChange {
            rules: vec!["resetpass".to_owned(), format!("#{new}")],
            undo: vec![format!("!{new}"), format!("#{login}")],
        }
    }
}

/// How the server keeps its users, from `CONFIG GET aclfile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Persistence {
    /// An ACL file: every change is saved to it with `ACL SAVE`, in the same transaction.
    AclFile,
    /// No ACL file (users from the configuration or `ACL SETUSER` alone): changes live in memory
    /// and are lost at a restart unless the configuration is rewritten.
    InMemory,
    /// The account may not read the configuration: saved as with an ACL file, and a failed save
    /// fails the step.
    Unknown,
}

impl Persistence {
    /// From `CONFIG GET aclfile`'s answer (`["aclfile", "<path>"]`, or a map); `None` is an answer
    /// that names no `aclfile`.
    pub(super) fn from_config(value: &Value) -> Option<Self> {
        let path = match value {
            Value::Array(items) => items
                .chunks_exact(2)
                .find(|pair| text(&pair[0]).as_deref() == Some("aclfile"))
                .and_then(|pair| text(&pair[1])),
            Value::Map(pairs) => pairs
                .iter()
                .find(|(key, _)| text(key).as_deref() == Some("aclfile"))
                .and_then(|(_, value)| text(value)),
            _ => None,
        }?;
        Some(if path.is_empty() {
            Persistence::InMemory
        } else {
            Persistence::AclFile
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn hashes_are_redis_sha256_hex() {
        // ACL SETUSER u >pw1 ; ACL GETUSER u (Redis 7.0).
        assert_eq!(
            password_hash("pw1"),
            "c592df4a86933b92addc9842402ddf198c638ea9be58916ee6e3734e1e3152f8"
        );
        assert_eq!(password_hash("é").len(), 64);
    }

    #[test]
    fn getuser_answers_are_read() {
        let answer = Value::Array(vec![
            bulk("flags"),
            Value::Array(vec![bulk("on"), bulk("sanitize-payload")]),
            bulk("passwords"),
            Value::Array(vec![bulk("aa"), bulk("bb")]),
            bulk("commands"),
            bulk("-@all +get"),
            bulk("keys"),
            bulk("~app:*"),
            bulk("channels"),
            bulk(""),
            bulk("selectors"),
            Value::Array(vec![]),
        ]);
        let user = AclUser::from_value(&answer).unwrap();
        assert_eq!(user.passwords, ["aa", "bb"]);
        assert!(!user.nopass());
        let map = Value::Map(vec![
            (bulk("flags"), Value::Set(vec![bulk("on"), bulk("nopass")])),
            (bulk("passwords"), Value::Array(vec![])),
        ]);
        assert!(AclUser::from_value(&map).unwrap().nopass());
        assert_eq!(AclUser::from_value(&Value::Nil), None);
        assert_eq!(
            AclUser::from_value(&Value::Array(vec![bulk("flags")])),
            None
        );
    }

    #[test]
    fn dual_keeps_current_adds_new_and_removes_the_rest() {
        let user = AclUser {
            flags: vec!["on".into()],
            passwords: vec!["old".into(), "cur".into(), "stray".into()],
        };
        let change = PasswordChange::dual(&user, "cur", "new");
        assert_eq!(change.rules, ["#new", "!old", "!stray"]);
        assert_eq!(change.undo, ["!new", "#old", "#stray"]);
        // Repeated once the new hash is there: nothing to remove, and the undo keeps it.
        let user = AclUser {
            flags: vec!["on".into()],
            passwords: vec!["cur".into(), "new".into()],
        };
        let change = PasswordChange::dual(&user, "cur", "new");
        assert_eq!(change.rules, ["#new"]);
        assert!(change.undo.is_empty());
    }

    #[test]
    fn single_replaces_every_password() {
        let change = PasswordChange::single("login", "new");
        assert_eq!(change.rules, ["resetpass", "#new"]);
        assert_eq!(change.undo, ["!new", "#login"]);
    }

    #[test]
    fn persistence_follows_the_aclfile_setting() {
        let answer = |path: &str| Value::Array(vec![bulk("aclfile"), bulk(path)]);
        assert_eq!(
            Persistence::from_config(&answer("/etc/redis/users.acl")),
            Some(Persistence::AclFile)
        );
        assert_eq!(
            Persistence::from_config(&answer("")),
            Some(Persistence::InMemory)
        );
        assert_eq!(
            Persistence::from_config(&Value::Map(vec![(bulk("aclfile"), bulk(""))])),
            Some(Persistence::InMemory)
        );
        assert_eq!(Persistence::from_config(&Value::Array(vec![])), None);
    }
}
