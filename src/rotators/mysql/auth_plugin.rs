//! What MariaDB's password plugins store for a password, computed client-side, so that the
//! dual-password statement carries no plaintext (docs/protocol.md 5.13).
//!
//! - `mysql_native_password`: `*` and the upper-case hex of SHA1(SHA1(password)), what
//!   `PASSWORD()` returns.
//! - `ed25519`: MariaDB's plugin signs the server's challenge with a key derived from the password
//!   as RFC 8032 derives one from a seed, except that the whole password is hashed rather than a
//!   32-byte seed: the scalar is SHA-512(password)'s first half, clamped, and the plugin stores
//!   the public key (that scalar times the base point, compressed) in base64 without padding, what
//!   `ed25519_password()` returns. Checked here against a published value and, in the integration
//!   tests, against the server's own `USING PASSWORD(…)`.
//!
//! Both store the empty string for an empty password, which they accept without a challenge.

use std::fmt::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use curve25519_dalek::EdwardsPoint;
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// An authentication plugin whose stored value the function can compute from a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPlugin {
    /// `mysql_native_password`
    Native,
    /// `ed25519` (MariaDB's `auth_ed25519`)
    Ed25519,
}

impl PasswordPlugin {
    /// The plugins dual-password can write, for error messages.
    pub(super) const SUPPORTED: &'static str = "mysql_native_password, ed25519";

    /// The plugin named `name` as MariaDB spells it, if the function can compute its value.
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "mysql_native_password" => Some(PasswordPlugin::Native),
            "ed25519" => Some(PasswordPlugin::Ed25519),
            _ => None,
        }
    }

    /// The plugin's name in SQL.
    pub(super) fn name(self) -> &'static str {
        match self {
            PasswordPlugin::Native => "mysql_native_password",
            PasswordPlugin::Ed25519 => "ed25519",
        }
    }

    /// What the plugin stores for `password` (`USING '<value>'`). Derived from a password: never
    /// log it.
    pub fn stored_value(self, password: &str) -> String {
        if password.is_empty() {
            return String::new();
        }
        match self {
            PasswordPlugin::Native => native_password(password.as_bytes()),
            PasswordPlugin::Ed25519 => ed25519_public_key(password.as_bytes()),
        }
    }
}

/// `*` and the upper-case hex of SHA1(SHA1(password)).
fn native_password(password: &[u8]) -> String {
    let twice = Sha1::digest(Sha1::digest(password));
    let mut out = String::with_capacity(41);
    out.push('*');
    for byte in twice {
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The base64 (unpadded) compressed Edwards point clamp(SHA-512(password)[..32]) · B.
fn ed25519_public_key(password: &[u8]) -> String {
    let hash = Sha512::digest(password);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&hash[..32]);
    let point = EdwardsPoint::mul_base_clamped(scalar);
    STANDARD_NO_PAD.encode(point.compress().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_matches_the_servers_password_function() {
        // SELECT PASSWORD('a'), PASSWORD('b') on MariaDB 10.11.
        assert_eq!(
            PasswordPlugin::Native.stored_value("a"),
            "*667F407DE7C6AD07358FA38DAED7828A72014B4E"
        );
        assert_eq!(
            PasswordPlugin::Native.stored_value("b"),
            "*F33AE6DD04EF4C7C1D3105568E7FB7C1EE16C937"
        );
        assert_eq!(PasswordPlugin::Native.stored_value(""), "");
    }

    #[test]
    fn ed25519_matches_the_plugins_derivation() {
        // ed25519_password(""), as MariaDB's documentation and mysqldump tests print it: the
        // derivation itself, before the empty-password rule stores "" instead.
        assert_eq!(
            ed25519_public_key(b""),
            "4LH+dBF+G5W2CKTyId8xR3SyDqZoQjUNUVNxx8aWbG4"
        );
        assert_eq!(PasswordPlugin::Ed25519.stored_value(""), "");
        // `IDENTIFIED VIA ed25519 USING PASSWORD('secret')` on MariaDB 10.11.
        assert_eq!(
            PasswordPlugin::Ed25519.stored_value("secret"),
            "ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY"
        );
    }

    /// The driver signs what the server's authentication switch carries. MariaDB's ed25519
    /// challenge is 32 random bytes with no terminator, and a trailing zero is part of it; MySQL's
    /// plugins end their scramble with a terminator that is not (vendor/README.md).
    #[test]
    fn an_ed25519_challenge_ending_in_zero_is_signed_whole() {
        use mysql_common::packets::AuthSwitchRequest;
        let mut challenge = [0x5a_u8; 32];
        challenge[31] = 0;
        let ed25519 = AuthSwitchRequest::new(&b"client_ed25519"[..], &challenge[..]);
        assert_eq!(ed25519.plugin_data(), &challenge[..]);
        let mut scramble = [0x21_u8; 21];
        scramble[20] = 0;
        let native = AuthSwitchRequest::new(&b"mysql_native_password"[..], &scramble[..]);
        assert_eq!(native.plugin_data(), &scramble[..20]);
    }

    #[test]
    fn plugins_by_name() {
        for plugin in [PasswordPlugin::Native, PasswordPlugin::Ed25519] {
            assert_eq!(PasswordPlugin::parse(plugin.name()), Some(plugin));
            assert!(PasswordPlugin::SUPPORTED.contains(plugin.name()));
        }
        assert_eq!(PasswordPlugin::parse("unix_socket"), None);
        assert_eq!(PasswordPlugin::parse("ED25519"), None);
    }
}
