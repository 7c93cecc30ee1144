//! The alternating-users path, as the master (docs/protocol.md 5.8): the target is `<pending
//! user>@<current account's host>`. Every rotation runs the same named steps, each idempotent:
//!
//! 1. [`ensure the account`](MasterChange::ensure_account): create it when missing (`CREATE USER IF
//!    NOT EXISTS`, with a throwaway password);
//! 2. [`replay the grants`](MasterChange::replay_grants) of the current account's `SHOW GRANTS`;
//! 3. [`copy the TLS requirement`](MasterChange::copy_tls_requirement) from its `mysql.user` row;
//! 4. [`check the privileges`](MasterChange::check_privileges) the target holds against the
//!    current account's (docs/protocol.md 5.12);
//! 5. [`set the password`](MasterChange::set_password), last.
//!
//! Account statements commit implicitly, so this is not one transaction; because the pending
//! password comes last, a rotation interrupted anywhere is repeated in full by the retry.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use super::grants::{GrantLine, grant_units, rewrite_grant};
use super::quote::account_sql;
use super::session::{MySession, error_code};
use super::tls_requirement::{RequireRow, TlsRequirement};
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::rotators::Account;
use crate::rotators::driver::{bounded, database_error};

/// What the whole change is called in errors.
const CHANGING: &str = "creating or updating the alternate user";

/// Makes the database accept `pending`'s password for `<pending user>@<current account's host>`,
/// creating and repairing that account first; bounded by one statement budget of `ctx`.
pub(super) async fn set_password_as_master(
    master: &mut MySession,
    current: &Account,
    pending: &DbSecret,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = master.engine;
    let Some(host) = current.host.as_deref() else {
        return Err(database_error(
            engine,
            "looking up the alternate user",
            "the current account has no host",
        ));
    };
    let timeout = ctx.query_timeout(CHANGING)?;
    let target_user = pending.username();
    let mut change = MasterChange {
        master,
        current_user: &current.user,
        host,
        target_user,
        target: account_sql(target_user, host),
    };
    let (created, grants) = bounded(timeout, change.apply(pending.password()), |timed_out| {
        database_error(
            engine,
            CHANGING,
            format!("{timed_out}; some changes may have been applied"),
        )
    })
    .await?;
    info!(
        user = target_user,
        host, created, grants, "alternate user updated"
    );
    Ok(())
}

/// One rotation's change, as the master, of the account `target` for the current account
/// `current_user@host`.
struct MasterChange<'a> {
    master: &'a mut MySession,
    current_user: &'a str,
    host: &'a str,
    target_user: &'a str,
    /// `` `target_user`@`host` ``.
    target: String,
}

impl MasterChange<'_> {
    /// The steps in order; returns whether the account was created and how many grant lines
    /// were replayed.
    async fn apply(&mut self, password: &Password) -> Result<(bool, usize), Error> {
        let created = self.ensure_account().await?;
        if self.target_user == self.current_user {
            self.set_password(password).await?;
            return Ok((created, 0));
        }
        let (replayed, expected) = self.replay_grants().await?;
        self.copy_tls_requirement().await?;
        self.check_privileges(&expected).await?;
        self.set_password(password).await?;
        Ok((created, replayed))
    }

    fn failed(&self, action: &'static str, e: &mysql_async::Error) -> Error {
        database_error(self.master.engine, action, error_code(e))
    }

    /// Creates the target when missing. The pending password is set last: once it logs in, a
    /// retried setSecret returns early (docs/protocol.md 3), so the grants and the TLS
    /// requirement must be in place before it does. A new account therefore starts with a
    /// throwaway password nobody knows (mixed classes, for password-validation plugins).
    /// Returns whether this call created it.
    async fn ensure_account(&mut self) -> Result<bool, Error> {
        let exists: Option<u8> = self
            .master
            .conn
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (self.target_user, self.host),
            )
            .await
            .map_err(|e| self.failed("looking up the alternate user", &e))?;
        if exists.is_some() {
            return Ok(false);
        }
        let throwaway = format!("Tw{:032x}-Aa1!", rand::random::<u128>());
        let statement = format!(
            "CREATE USER IF NOT EXISTS {} IDENTIFIED BY {}",
            self.target,
            self.master.literal(&throwaway)
        );
        self.master
            .execute(&statement, "creating the alternate user")
            .await?;
        // A warning means the account appeared meanwhile.
        Ok(self.master.conn.get_warnings() == 0)
    }

    /// Replays every grant of the current account onto the target, grantee rewritten. Returns
    /// the number of lines replayed and the privileges they confer ([`grant_units`]).
    async fn replay_grants(&mut self) -> Result<(usize, BTreeSet<String>), Error> {
        let source = account_sql(self.current_user, self.host);
        let grants: Vec<String> = self
            .master
            .conn
            .query(format!("SHOW GRANTS FOR {source}"))
            .await
            .map_err(|e| self.failed("reading the current account's grants", &e))?;
        let mut replayed = 0usize;
        let mut expected = BTreeSet::new();
        for line in &grants {
            match rewrite_grant(line, self.current_user, self.host, &self.target) {
                Ok(GrantLine::Replay(statement)) => {
                    expected.extend(grant_units(&statement));
                    self.master
                        .execute(&statement, "copying the current account's grants")
                        .await?;
                    replayed += 1;
                }
                Ok(GrantLine::Usage) => {}
                Ok(GrantLine::Proxy) => {
                    self.warn_not_copied("not copying a PROXY grant to the alternate user")
                }
                Ok(GrantLine::Unknown) => self.warn_not_copied(
                    "not copying an unrecognised SHOW GRANTS line to the alternate user",
                ),
                Err(problem) => {
                    return Err(database_error(
                        self.master.engine,
                        "copying the current account's grants",
                        problem,
                    ));
                }
            }
        }
        Ok((replayed, expected))
    }

    fn warn_not_copied(&self, message: &'static str) {
        warn!(
            user = self.current_user,
            host = self.host,
            target = self.target_user,
            "{message}"
        );
    }

    /// Gives the target the current account's `REQUIRE` setting, read from `mysql.user` (a table
    /// in MySQL, a view in MariaDB 10.4+) with bound parameters rather than parsed from `SHOW
    /// CREATE USER`, whose MySQL 8 output carries a binary password hash.
    async fn copy_tls_requirement(&mut self) -> Result<(), Error> {
        const READING: &str = "reading the current account's TLS requirement";
        let engine = self.master.engine;
        let row: Option<RequireRow> = self
            .master
            .conn
            .exec_first(
                "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject \
                 FROM mysql.user WHERE User = ? AND Host = ?",
                (self.current_user, self.host),
            )
            .await
            .map_err(|e| self.failed(READING, &e))?;
        let unreadable = |code: &str| database_error(engine, READING, code);
        let (ssl_type, cipher, issuer, subject) =
            row.ok_or_else(|| unreadable("the current account has no mysql.user row"))?;
        let text = |bytes: Option<Vec<u8>>| {
            String::from_utf8(bytes.unwrap_or_default())
                .map_err(|_| unreadable("a REQUIRE value is not UTF-8"))
        };
        let requirement = TlsRequirement::from_row(
            &text(ssl_type)?,
            &text(cipher)?,
            &text(issuer)?,
            &text(subject)?,
        )
        .ok_or_else(|| unreadable("unknown ssl_type"))?;
        let statement = format!(
            "ALTER USER {} {}",
            self.target,
            requirement.to_sql(self.master.server.no_backslash_escapes)
        );
        self.master
            .execute(&statement, "copying the current account's TLS requirement")
            .await
    }

    /// Compares what the target holds with what the replay gave it (`expected`). The replay only
    /// adds, so privileges the current account lacks are reported, never revoked: the place where
    /// the privilege invariant of docs/protocol.md 5.12 is enforced.
    async fn check_privileges(&mut self, expected: &BTreeSet<String>) -> Result<(), Error> {
        let held: Vec<String> = self
            .master
            .conn
            .query(format!("SHOW GRANTS FOR {}", self.target))
            .await
            .map_err(|e| self.failed("reading the alternate user's grants", &e))?;
        let extra = held
            .iter()
            .filter_map(|line| {
                match rewrite_grant(line, self.target_user, self.host, &self.target) {
                    Ok(GrantLine::Replay(statement)) => Some(grant_units(&statement)),
                    _ => None,
                }
            })
            .flatten()
            .filter(|unit| !expected.contains(unit))
            .count();
        if extra > 0 {
            warn!(
                user = self.current_user,
                target = self.target_user,
                host = self.host,
                extra,
                "the alternate user holds privileges the current user lacks; \
                 the replay only adds, so revoke them by hand if unintended"
            );
        }
        Ok(())
    }

    /// Sets the target's password to the pending one.
    async fn set_password(&mut self, password: &Password) -> Result<(), Error> {
        let statement = format!(
            "ALTER USER {} IDENTIFIED BY {}",
            self.target,
            self.master.literal(password.expose())
        );
        self.master
            .execute(&statement, "setting the password")
            .await
    }
}
