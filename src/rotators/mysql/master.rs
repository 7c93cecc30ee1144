//! The alternating-users path, as the master (docs/protocol.md 5.8): the target is `<pending
//! user>@<current account's host>`. Every rotation runs the same named steps, each idempotent:
//!
//! 1. [`prove the current account`](MasterChange::prove_current): on the master's server, the
//!    current account accepts the current secret's password (where its plugin's stored value can
//!    be computed), so the master acts on the database the current secret logged in to, not on a
//!    namesake behind another port;
//! 2. [`enforce the privilege invariant`](MasterChange::enforce_invariant) (5.12), before the
//!    master changes anything: an existing clone may have nothing the current account lacks
//!    (adding `_clone`), must already hold everything it holds (as this function makes it) and
//!    may be controlled by nobody else (no `PROXY` grant naming it, no definer objects, no MySQL
//!    role grant of it); the clone must already hold everything the original holds (removing
//!    it);
//! 3. [`create the account`](MasterChange::create_account) when missing, with a throwaway
//!    password and locked, so that nobody logs in as it before it holds what it should;
//! 4. [`replay the grants`](MasterChange::replay_grants) of the current account's `SHOW GRANTS`;
//! 5. [`copy the TLS requirement`](MasterChange::copy_tls_requirement) from its `mysql.user` row;
//! 6. enforce the invariant again, so that nothing granted by anyone meanwhile is handed over;
//! 7. [`set the password`](MasterChange::set_password) and unlock the account, last.
//!
//! Account statements commit implicitly, so this is not one transaction; because the pending
//! password comes last, a rotation interrupted anywhere is repeated in full by the retry. A
//! clone left locked, without sessions, by an interrupted first rotation lacks some of the
//! current account's grants, and is the one existing clone step 2 accepts without all of them:
//! nobody can have logged in as it.
//!
//! Passwords: on MariaDB the account gets the value its plugin stores (the current account's
//! plugin, `mysql_native_password` or `ed25519`), computed client-side, so no statement carries
//! a password (docs/protocol.md 5.14). MySQL's statements carry it (`IDENTIFIED WITH <the current
//! account's plugin> BY …`, never `mysql_native_password` by default), so the rotator refuses
//! them on a connection without verified TLS unless `ALLOW_CLEARTEXT_PASSWORDS` allows it.

use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use super::auth_plugin::PasswordPlugin;
use super::grants::{GrantLine, rewrite_grant};
use super::methods::{Method, any_accepts, from_global_priv};
use super::privileges::Privileges;
use super::quote::{account_sql, quote_identifier};
use super::session::{MySession, error_code};
use super::tls_requirement::{RequireRow, TlsRequirement};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::error::{CloneFindings, Error, Shortfall, ShortfallKind};
use crate::rotators::driver::{AUDITING, bounded, database_error};
use crate::rotators::{Account, Handover, not_on_the_masters_server, privilege_gap};

/// What the whole change is called in errors.
const CHANGING: &str = "creating or updating the alternate user";

/// Makes the database accept `pending`'s password for `<pending user>@<current account's host>`,
/// creating and repairing that account first; bounded by one statement budget of `ctx`.
pub(super) async fn set_password_as_master(
    master: &mut MySession,
    current: &Account,
    current_secret: &Login,
    pending: &Login,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = master.engine;
    let target_user = pending.username();
    let mut change = MasterChange::new(master, current, target_user, ctx)?;
    change.current_password = Some(current_secret.password());
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
pub(super) async fn audit_clone(
    master: &mut MySession,
    current: &Account,
    pending_user: &str,
    ctx: &StepContext<'_>,
) -> Result<CloneFindings, Error> {
    let engine = master.engine;
    let mut change = MasterChange::new(master, current, pending_user, ctx)?;
    let timeout = ctx.query_timeout(AUDITING)?;
    let work = async {
        let exists = change.account_exists().await?;
        change.findings(exists).await
    };
    bounded(timeout, work, |timed_out| {
        database_error(engine, AUDITING, timed_out)
    })
    .await
}

/// What the master lacks to create or update `<pending_user>@<current account's host>` with the
/// current account's grants, found without changing anything (docs/protocol.md 5.15): `CREATE
/// USER`, each privilege to replay with `GRANT OPTION` (or a role's `ADMIN OPTION`), and reading
/// `mysql.*`.
pub(super) async fn master_shortfalls(
    master: &mut MySession,
    current: &Account,
    pending_user: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    const CHECKING: &str = "reading what the master may do";
    let engine = master.engine;
    let timeout = ctx.query_timeout(CHECKING)?;
    let master_account = master.account.clone();
    let master_name = master.account_name();
    let mut change = MasterChange::new(master, current, pending_user, ctx)?;
    let work = async {
        let lines: Vec<String> = change
            .master
            .conn
            .query("SHOW GRANTS")
            .await
            .map_err(|e| change.failed(CHECKING, &e))?;
        let host = master_account.host.as_deref().unwrap_or_default();
        let held = Privileges::from_show_grants(&lines, &master_account.user, host)
            .map_err(|problem| database_error(engine, CHECKING, problem))?;
        let lacks = |missing: String, hint: String| Shortfall {
            kind: ShortfallKind::MasterPrivilege,
            account: master_name.clone(),
            missing,
            hint: Some(hint),
        };
        let mut found = Vec::new();
        if !held.holds_global("CREATE USER") {
            found.push(lacks(
                "CREATE USER ON *.*".to_owned(),
                format!("GRANT CREATE USER ON *.* TO {master_name}"),
            ));
        }
        if let Err(e) = methods_of(change.master, change.current_user, change.host).await {
            found.push(lacks(
                format!("SELECT ON the mysql database ({e})"),
                format!("GRANT SELECT ON mysql.* TO {master_name}"),
            ));
        }
        let source = change.privileges_of(change.current_user).await?;
        found.extend(source.not_grantable_by(&held).into_iter().map(|unit| {
            lacks(
                format!("{unit} WITH GRANT OPTION, to give it to the clone"),
                "grant it to the master WITH GRANT OPTION (ADMIN OPTION for a role)".to_owned(),
            )
        }));
        Ok(found)
    };
    bounded(timeout, work, |timed_out| {
        database_error(engine, CHECKING, timed_out)
    })
    .await
}

/// The authentication methods of `user@host` on the master's server: MariaDB's from
/// `mysql.global_priv`, MySQL's from `mysql.user`; `None` when the server has no such account.
pub(super) async fn methods_of(
    master: &mut MySession,
    user: &str,
    host: &str,
) -> Result<Option<Vec<Method>>, Error> {
    const READING: &str = "reading the account's authentication methods";
    let engine = master.engine;
    let failed = |e: mysql_async::Error| database_error(engine, READING, error_code(&e));
    if master.server.mariadb {
        let privileges: Option<String> = master
            .conn
            .exec_first(
                "SELECT Priv FROM mysql.global_priv WHERE User = ? AND Host = ?",
                (user, host),
            )
            .await
            .map_err(failed)?;
        let Some(privileges) = privileges else {
            return Ok(None);
        };
        from_global_priv(&privileges)
            .map(Some)
            .ok_or_else(|| database_error(engine, READING, "its JSON is not understood"))
    } else {
        let row: Option<(String, Vec<u8>)> = master
            .conn
            .exec_first(
                "SELECT plugin, authentication_string FROM mysql.user WHERE User = ? AND Host = ?",
                (user, host),
            )
            .await
            .map_err(failed)?;
        Ok(row.map(|(plugin, value)| {
            vec![Method {
                plugin,
                value: String::from_utf8_lossy(&value).into_owned(),
            }]
        }))
    }
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
    /// The current secret's password, which the current account must accept on the master's
    /// server; `None` in an audit, which proves nothing before acting.
    current_password: Option<&'a Password>,
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
            current_password: None,
        })
    }

    /// The steps in order; returns whether the account was created and how many grant lines
    /// were replayed.
    async fn apply(&mut self, password: &Password) -> Result<(bool, usize), Error> {
        let exists = self.account_exists().await?;
        let plugin = self.prove_current().await?;
        self.enforce_invariant(exists).await?;
        if !exists {
            self.create_account(&plugin).await?;
        }
        let replayed = self.replay_grants().await?;
        self.copy_tls_requirement().await?;
        self.enforce_invariant(true).await?;
        self.set_password(&plugin, password).await?;
        Ok((!exists, replayed))
    }

    /// Requires that the current account, on the master's server, accepts the current secret's
    /// password, where its plugin's value can be computed (MariaDB's and MySQL's
    /// `mysql_native_password`, MariaDB's `ed25519`); otherwise the secret's host and port, which
    /// the handler compared with the master's, are the proof. Returns the plugin the target's
    /// password is written with: the current account's.
    async fn prove_current(&mut self) -> Result<String, Error> {
        let elsewhere = || not_on_the_masters_server(self.ctx, self.current_user, self.host);
        let methods = methods_of(self.master, self.current_user, self.host)
            .await?
            .ok_or_else(elsewhere)?;
        if let Some(password) = self.current_password {
            if any_accepts(&methods, password.expose()) == Some(false) {
                return Err(elsewhere());
            }
        }
        let computable = methods.iter().find_map(Method::computable);
        Ok(match (self.master.server.mariadb, computable) {
            (true, Some(plugin)) => plugin.name().to_owned(),
            (true, None) => PasswordPlugin::Native.name().to_owned(),
            (false, _) => methods
                .first()
                .map(|m| m.plugin.clone())
                .unwrap_or_default(),
        })
    }

    /// `IDENTIFIED …` giving the target `password` under `plugin`: on MariaDB the value the plugin
    /// stores, computed here; on MySQL the password itself (`WITH <plugin> BY`), which the
    /// rotator sends only where the transport allows. Never log it.
    fn identified(&self, plugin: &str, password: &str) -> String {
        if self.master.server.mariadb {
            let plugin = PasswordPlugin::parse(plugin).unwrap_or(PasswordPlugin::Native);
            format!(
                "IDENTIFIED VIA {} USING {}",
                plugin.name(),
                self.master.literal(&plugin.stored_value(password))
            )
        } else if plugin.is_empty() {
            format!("IDENTIFIED BY {}", self.master.literal(password))
        } else {
            format!(
                "IDENTIFIED WITH {} BY {}",
                quote_identifier(plugin),
                self.master.literal(password)
            )
        }
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
    async fn create_account(&mut self, plugin: &str) -> Result<(), Error> {
        let throwaway = format!("Tw{:032x}-Aa1!", rand::random::<u128>());
        let statement = format!(
            "CREATE USER {} {} ACCOUNT LOCK",
            self.target,
            self.identified(plugin, &throwaway)
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
    /// hands over, may do nothing the current account may not, and nobody else controls it.
    async fn enforce_invariant(&mut self, exists: bool) -> Result<(), Error> {
        let findings = self.findings(exists).await?;
        if findings.is_empty() {
            Ok(())
        } else {
            let given = format!("{}@{}", self.target_user, self.host);
            let current = format!("{}@{}", self.current_user, self.host);
            Err(privilege_gap(self.ctx, given, current, findings))
        }
    }

    /// What stands in the way of handing the target over: empty when the invariant holds.
    /// Adding `_clone`, a clone that does not exist yet holds nothing, and an existing one must
    /// hold exactly the current account's grants (then handing it over gives nobody anything
    /// new, its sessions included) and be controlled by nobody else; removing it, the original
    /// must exist.
    async fn findings(&mut self, exists: bool) -> Result<CloneFindings, Error> {
        Ok(match (self.handover, exists) {
            (Handover::Append, false) => CloneFindings::default(),
            (Handover::Strip, false) => CloneFindings {
                excess: vec![format!(
                    "the account {}@{} itself, which does not exist, so the clone cannot be \
                     shown to hold its privileges",
                    self.target_user, self.host
                )],
                ..CloneFindings::default()
            },
            (Handover::Strip, true) => {
                let target = self.privileges_of(self.target_user).await?;
                let source = self.privileges_of(self.current_user).await?;
                CloneFindings {
                    excess: target.excess_over(&source),
                    ..CloneFindings::default()
                }
            }
            (Handover::Append, true) => {
                let target = self.privileges_of(self.target_user).await?;
                let source = self.privileges_of(self.current_user).await?;
                let mut missing = source.excess_over(&target);
                if !missing.is_empty() && self.unused_since_created().await? {
                    // An interrupted first rotation's clone: nobody can have logged in as it.
                    missing.clear();
                }
                CloneFindings {
                    excess: target.excess_over(&source),
                    missing,
                    controllers: self.controllers().await?,
                }
            }
        })
    }

    /// Whether the target is locked and has no session: the state [`Self::create_account`]
    /// leaves it in until the last step unlocks it.
    async fn unused_since_created(&mut self) -> Result<bool, Error> {
        const READING: &str = "reading whether the alternate user is locked";
        // No row, or no `account_locked` key (an account never locked): NULL.
        let locked: Option<Option<String>> = if self.master.server.mariadb {
            self.master
                .conn
                .exec_first(
                    "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv \
                     WHERE User = ? AND Host = ?",
                    (self.target_user, self.host),
                )
                .await
        } else {
            self.master
                .conn
                .exec_first(
                    "SELECT account_locked FROM mysql.user WHERE User = ? AND Host = ?",
                    (self.target_user, self.host),
                )
                .await
        }
        .map_err(|e| self.failed(READING, &e))?;
        // MariaDB stores a JSON boolean, which JSON_VALUE reads as `1`; MySQL a `Y`.
        if !matches!(locked.flatten().as_deref(), Some("1" | "true" | "Y")) {
            return Ok(false);
        }
        let sessions: Option<i64> = self
            .master
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
                (self.target_user,),
            )
            .await
            .map_err(|e| self.failed(READING, &e))?;
        Ok(sessions == Some(0))
    }

    /// Who else can act as the target or with its rights: accounts that may proxy as it, objects
    /// that run with its rights (stored routines, views, triggers and events whose `DEFINER` it
    /// is) and, on MySQL 8, accounts it is granted to as a role.
    async fn controllers(&mut self) -> Result<Vec<String>, Error> {
        const READING: &str = "looking for other controllers of the alternate user";
        let mut found = Vec::new();
        let proxies: Vec<(String, String)> = self
            .master
            .conn
            .exec(
                "SELECT User, Host FROM mysql.proxies_priv \
                 WHERE Proxied_user = ? AND Proxied_host = ?",
                (self.target_user, self.host),
            )
            .await
            .map_err(|e| self.failed(READING, &e))?;
        found.extend(
            proxies
                .into_iter()
                .map(|(user, host)| format!("the account {user}@{host} may proxy as it")),
        );
        let definer = format!("{}@{}", self.target_user, self.host);
        let objects: Vec<(String, i64)> = self
            .master
            .conn
            .exec(
                "SELECT 'stored routine', COUNT(*) FROM information_schema.ROUTINES \
                 WHERE DEFINER = ? \
                 UNION ALL SELECT 'view', COUNT(*) FROM information_schema.VIEWS \
                 WHERE DEFINER = ? \
                 UNION ALL SELECT 'trigger', COUNT(*) FROM information_schema.TRIGGERS \
                 WHERE DEFINER = ? \
                 UNION ALL SELECT 'event', COUNT(*) FROM information_schema.EVENTS \
                 WHERE DEFINER = ?",
                (&definer, &definer, &definer, &definer),
            )
            .await
            .map_err(|e| self.failed(READING, &e))?;
        found.extend(
            objects
                .into_iter()
                .filter(|(_, count)| *count > 0)
                .map(|(kind, count)| format!("{count} {kind}(s) run with its rights (DEFINER)")),
        );
        if !self.master.server.mariadb {
            let grantees: Vec<(String, String)> = self
                .master
                .conn
                .exec(
                    "SELECT TO_USER, TO_HOST FROM mysql.role_edges \
                     WHERE FROM_USER = ? AND FROM_HOST = ?",
                    (self.target_user, self.host),
                )
                .await
                .map_err(|e| self.failed(READING, &e))?;
            found.extend(
                grantees
                    .into_iter()
                    .map(|(user, host)| format!("it is granted as a role to {user}@{host}")),
            );
        }
        Ok(found)
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

    /// Sets the target's password to the pending one, under `plugin`, and unlocks it: the
    /// pending credential must log in.
    async fn set_password(&mut self, plugin: &str, password: &Password) -> Result<(), Error> {
        let statement = format!(
            "ALTER USER {} {} ACCOUNT UNLOCK",
            self.target,
            self.identified(plugin, password.expose())
        );
        self.master
            .execute(&statement, "setting the password")
            .await
    }
}
