//! The alternating-users path, as the master (docs/protocol.md 5.8): the target is `<pending
//! user>@<current account's host>`. Every rotation runs the same named steps, each idempotent:
//!
//! 1. [`enforce the privilege invariant`](MasterChange::enforce_invariant) (5.12), before the
//!    master changes anything: an existing clone may have nothing the current account lacks
//!    (adding `_clone`), and the clone must already hold everything the original holds (removing
//!    it);
//! 2. [`create the account`](MasterChange::create_account) when missing, with a throwaway
//!    password;
//! 3. [`replay the grants`](MasterChange::replay_grants) of the current account's `SHOW GRANTS`;
//! 4. [`copy the TLS requirement`](MasterChange::copy_tls_requirement) from its `mysql.user` row;
//! 5. enforce the invariant again, so that nothing granted by anyone meanwhile is handed over;
//! 6. [`set the password`](MasterChange::set_password), last.
//!
//! Account statements commit implicitly, so this is not one transaction; because the pending
//! password comes last, a rotation interrupted anywhere is repeated in full by the retry.

use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use super::grants::{GrantLine, rewrite_grant};
use super::privileges::Privileges;
use super::quote::account_sql;
use super::session::{MySession, error_code};
use super::tls_requirement::{RequireRow, TlsRequirement};
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::rotators::driver::{AUDITING, bounded, database_error};
use crate::rotators::{Account, Handover, privilege_gap};

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
    let target_user = pending.username();
    let mut change = MasterChange::new(master, current, target_user, ctx)?;
    let host = change.host;
    let timeout = ctx.query_timeout(CHANGING)?;
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

/// What the next rotation's privilege check would refuse, without changing anything: the
/// invariant (5.12) for handing `<pending_user>@<current account's host>` over, read from both
/// accounts' `SHOW GRANTS` as the master. Empty when it holds.
pub(crate) async fn audit_clone(
    master: &mut MySession,
    current: &Account,
    pending_user: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<String>, Error> {
    let engine = master.engine;
    let mut change = MasterChange::new(master, current, pending_user, ctx)?;
    let timeout = ctx.query_timeout(AUDITING)?;
    let work = async {
        let exists = change.account_exists().await?;
        change.excess(exists).await
    };
    bounded(timeout, work, |timed_out| {
        database_error(engine, AUDITING, timed_out)
    })
    .await
}

/// One rotation's change, as the master, of the account `target` for the current account
/// `current_user@host`.
struct MasterChange<'a> {
    master: &'a mut MySession,
    ctx: &'a StepContext<'a>,
    /// Adding or removing `_clone`.
    handover: Handover,
    current_user: &'a str,
    host: &'a str,
    target_user: &'a str,
    /// `` `target_user`@`host` ``.
    target: String,
}

impl<'a> MasterChange<'a> {
    /// The change, as `master`, of `<pending_user>@<current account's host>`, which must be the
    /// current user or its clone.
    fn new(
        master: &'a mut MySession,
        current: &'a Account,
        pending_user: &'a str,
        ctx: &'a StepContext<'a>,
    ) -> Result<Self, Error> {
        let Some(host) = current.host.as_deref() else {
            return Err(database_error(
                master.engine,
                "looking up the alternate user",
                "the current account has no host",
            ));
        };
        Ok(MasterChange {
            handover: Handover::between(current, pending_user, ctx)?,
            master,
            ctx,
            current_user: &current.user,
            host,
            target_user: pending_user,
            target: account_sql(pending_user, host),
        })
    }

    /// The steps in order; returns whether the account was created and how many grant lines
    /// were replayed.
    async fn apply(&mut self, password: &Password) -> Result<(bool, usize), Error> {
        let exists = self.account_exists().await?;
        self.enforce_invariant(exists).await?;
        if !exists {
            self.create_account().await?;
        }
        let replayed = self.replay_grants().await?;
        self.copy_tls_requirement().await?;
        self.enforce_invariant(true).await?;
        self.set_password(password).await?;
        Ok((!exists, replayed))
    }

    fn failed(&self, action: &'static str, e: &mysql_async::Error) -> Error {
        database_error(self.master.engine, action, error_code(e))
    }

    async fn account_exists(&mut self) -> Result<bool, Error> {
        let exists: Option<u8> = self
            .master
            .conn
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (self.target_user, self.host),
            )
            .await
            .map_err(|e| self.failed("looking up the alternate user", &e))?;
        Ok(exists.is_some())
    }

    /// Creates the missing target. The pending password is set last: once it logs in, a
    /// retried setSecret returns early (docs/protocol.md 3), so the grants and the TLS
    /// requirement must be in place before it does. A new account therefore starts with a
    /// throwaway password nobody knows (mixed classes, for password-validation plugins). Not
    /// `IF NOT EXISTS`: an account that appeared since the lookup fails the step (error 1396)
    /// instead of being adopted unchecked; the retry checks it.
    async fn create_account(&mut self) -> Result<(), Error> {
        let throwaway = format!("Tw{:032x}-Aa1!", rand::random::<u128>());
        let statement = format!(
            "CREATE USER {} IDENTIFIED BY {}",
            self.target,
            self.master.literal(&throwaway)
        );
        self.master
            .execute(&statement, "creating the alternate user")
            .await
    }

    /// What `user@host` may do, from its `SHOW GRANTS`.
    async fn privileges_of(&mut self, user: &str) -> Result<Privileges, Error> {
        const READING: &str = "reading grants to compare privileges";
        let lines: Vec<String> = self
            .master
            .conn
            .query(format!("SHOW GRANTS FOR {}", account_sql(user, self.host)))
            .await
            .map_err(|e| self.failed(READING, &e))?;
        Privileges::from_show_grants(&lines, user, self.host)
            .map_err(|problem| database_error(self.master.engine, READING, problem))
    }

    /// The privilege invariant (docs/protocol.md 5.12): the target, whose password the rotation
    /// hands over, may do nothing the current account may not.
    async fn enforce_invariant(&mut self, exists: bool) -> Result<(), Error> {
        let excess = self.excess(exists).await?;
        if excess.is_empty() {
            Ok(())
        } else {
            let given = format!("{}@{}", self.target_user, self.host);
            let current = format!("{}@{}", self.current_user, self.host);
            Err(privilege_gap(self.ctx, given, current, excess))
        }
    }

    /// What the target may do and the current account may not, from both accounts' `SHOW
    /// GRANTS`: empty when the invariant holds. Adding `_clone`, a clone that does not exist yet
    /// holds nothing; removing it, the original must exist.
    async fn excess(&mut self, exists: bool) -> Result<Vec<String>, Error> {
        Ok(match (self.handover, exists) {
            (Handover::Append, false) => Vec::new(),
            (Handover::Strip, false) => vec![format!(
                "the account {}@{} itself, which does not exist, so the clone cannot be shown \
                 to hold its privileges",
                self.target_user, self.host
            )],
            (_, true) => {
                let target = self.privileges_of(self.target_user).await?;
                let source = self.privileges_of(self.current_user).await?;
                target.excess_over(&source)
            }
        })
    }

    /// Replays every grant of the current account onto the target, grantee rewritten. Returns
    /// the number of lines replayed.
    async fn replay_grants(&mut self) -> Result<usize, Error> {
        let source = account_sql(self.current_user, self.host);
        let grants: Vec<String> = self
            .master
            .conn
            .query(format!("SHOW GRANTS FOR {source}"))
            .await
            .map_err(|e| self.failed("reading the current account's grants", &e))?;
        let mut replayed = 0usize;
        for line in &grants {
            match rewrite_grant(line, self.current_user, self.host, &self.target) {
                Ok(GrantLine::Replay(statement)) => {
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
        Ok(replayed)
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
