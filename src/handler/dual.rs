//! Which strategies each engine serves, the check that a server really compares passwords, and
//! setSecret for the dual-password strategy (docs/protocol.md 5.13).
//!
//! Dual password keeps the user name: pending differs from current by its password only. Before
//! the database changes, the function proves what a master must never take on trust:
//!
//! 1. pending names current's user and host (exact strings): a forged pending version cannot
//!    aim the step at another account;
//! 2. current logs in: the secret's holder owns the account, and the password kept beside the new
//!    one works;
//! 3. the server authenticated current as exactly current's user (MariaDB's `CURRENT_USER()`: not
//!    an anonymous or proxied account whose password the master would otherwise rewrite);
//! 4. where the master writes the passwords, its secret names the same host (as for alternating
//!    users).
//!
//! The account gains a password and loses the one before current; its privileges do not change,
//! so the holder of the secret can do nothing it could not do before (5.12).

use tracing::info;

use super::Rotation;
use crate::credentials::{DbSecret, Password};
use crate::engine::DualMethod;
use crate::error::Error;
use crate::protocol::{Stage, Strategy};
use crate::rds::RdsApi;
use crate::rotators::Rotator;
use crate::secrets::SecretStore;

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    /// Refuses, before anything is written, a strategy the secret's engine does not serve, and a
    /// strategy that needs `masterarn` without one.
    pub(super) fn require_supported(
        &self,
        current: &DbSecret,
        strategy: Strategy,
    ) -> Result<(), Error> {
        let engine = current.engine();
        let source = match current.rotation_strategy() {
            Some(_) => "the secret's rotation_strategy",
            None => "ROTATION_STRATEGY",
        };
        let refuse = |instead: &str| {
            Error::invalid_secret(
                self.secret_id(),
                Stage::Current,
                format!(
                    "strategy {strategy} (from {source}) is not supported for engine {engine}; {instead}"
                ),
            )
        };
        let needs_master = match strategy {
            Strategy::SingleUser => false,
            Strategy::AlternatingUsers if !engine.alternating_users() => {
                return Err(refuse(
                    "its users hold several passwords, so use dual-password for rotation without downtime",
                ));
            }
            Strategy::AlternatingUsers => true,
            Strategy::DualPassword => match engine.dual_password() {
                None => {
                    return Err(refuse(
                        "it keeps one password per user, so use alternating-users for rotation without downtime",
                    ));
                }
                Some(method) => method == DualMethod::Master,
            },
        };
        if needs_master {
            self.masterarn(current, strategy)?;
        }
        Ok(())
    }

    /// Where an account may accept every password (Redis `nopass`), proves that `pending`
    /// logging in means its password was set: a wrong password must be refused. Otherwise the
    /// rotation would complete and revoke nothing, so the step fails.
    pub(super) async fn require_password_checked(&self, pending: &DbSecret) -> Result<(), Error> {
        if !pending.engine().accounts_may_accept_any_password() {
            return Ok(());
        }
        let wrong = pending.with_password(Password::new(format!(
            "wrong-{:032x}",
            rand::random::<u128>()
        )));
        let Some(session) = self
            .try_login(&wrong, "login with a wrong password")
            .await?
        else {
            return Ok(());
        };
        self.rotator.close(session).await;
        Err(Error::Database {
            engine: pending.engine(),
            action: "checking that the account refuses a wrong password",
            code: "a wrong password logs in: the user accepts any password (nopass), so no \
                   rotation can revoke one; give it a password and store that in the secret"
                .to_owned(),
        })
    }

    /// setSecret for dual passwords: the pending password is added beside current's, by the user
    /// itself or by the master as the engine requires, after the checks of the module
    /// documentation. The caller has found that pending does not log in yet.
    pub(super) async fn set_secret_dual(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        self.require_same_account(pending, current, "current user", "current host")?;
        let Some(session) = self.try_login(current, "login with current secret").await? else {
            return Err(self.login_failed(self.secret_id(), "current"));
        };
        let account = self.rotator.account(&session);
        if account.user != current.username() {
            self.rotator.close(session).await;
            return Err(self.mismatch("user", &account.user, "current user", current.username()));
        }
        match current.engine().dual_password() {
            Some(DualMethod::OwnAccount) => {
                self.use_then_close(session, async |session| {
                    self.rotator
                        .add_own_password(session, current, pending, &self.ctx)
                        .await
                })
                .await?;
            }
            // `require_supported` refused engines without dual passwords before any work.
            Some(DualMethod::Master) | None => {
                self.rotator.close(session).await;
                let masterarn = self.masterarn(current, Strategy::DualPassword)?;
                let master = self.master_session(current, masterarn).await?;
                self.use_then_close(master, async |master| {
                    self.rotator
                        .add_password_as_master(master, &account, current, pending, &self.ctx)
                        .await
                })
                .await?;
            }
        }
        info!(
            user = pending.username(),
            "pending password added; the current one still logs in"
        );
        Ok(())
    }
}
