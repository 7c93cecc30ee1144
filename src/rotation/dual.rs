//! setSecret, dual passwords (docs/protocol.md 5.13): pending's password is added beside
//! current's, by the user itself or by the master as the engine requires.
//!
//! Before the database changes, the function proves what a master must never take on trust:
//!
//! 1. pending names current's user, host and port: a forged pending version cannot aim the step
//!    at another account;
//! 2. current logs in: the secret's holder owns the account, and the password kept beside the new
//!    one works;
//! 3. the server authenticated current as exactly current's user (MariaDB's `CURRENT_USER()`: not
//!    an anonymous or proxied account whose password the master would otherwise rewrite);
//! 4. where the master writes the passwords, it is resolved and proven as for alternating users.
//!
//! The account gains a password and loses the one before current; its privileges do not change,
//! so the holder of the secret can do nothing it could not do before (5.12). No login of pending
//! first: adding the same password again changes nothing, and MySQL's compare-and-set answers
//! [`Added::NotPrimary`] when it ran before, which a login of pending then tells apart.

use tracing::info;

use super::{Plan, Rotation, use_then_close};
use crate::credentials::DbSecret;
use crate::engine::Method;
use crate::error::Error;
use crate::rds::RdsApi;
use crate::rotators::{Added, DualMaster, DualOwn, Rotator, Session};
use crate::secrets::SecretStore;

/// What the change is called in errors.
const ADDING: &str = "adding the pending password beside the current one";

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    pub(super) async fn set_secret_dual(
        &self,
        plan: &Plan,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let scope = &self.scope;
        scope.require_same_account(pending, current, "current user", "current host")?;
        let Some(mut session) = scope
            .login(&current.login(), "login with current secret")
            .await?
        else {
            return Err(scope.login_failed(scope.secret_id(), "current"));
        };
        let account = session.account();
        if account.user != current.username() {
            session.close().await;
            return Err(scope.mismatch("user", &account.user, "current user", current.username()));
        }
        if plan.method == Method::DualOwn {
            let added = session
                .add_own_password(current.password(), pending.password(), &scope.ctx)
                .await;
            session.close().await;
            if let Added::NotPrimary(code) = added? {
                self.require_pending_added(pending, &code).await?;
            }
        } else {
            session.close().await;
            let masterarn = plan.masterarn.as_deref().unwrap_or_default();
            let master = scope.master(current, masterarn).await?;
            let session = scope.master_session(&master).await?;
            use_then_close(session, async |session| {
                session
                    .add_password_as_master(
                        &account,
                        current.password(),
                        pending.password(),
                        &scope.ctx,
                    )
                    .await
            })
            .await?;
        }
        info!(
            user = pending.username(),
            "pending password added; the current one still logs in"
        );
        Ok(())
    }

    /// Current's password is no longer the primary one: the statement ran before (its reply
    /// lost) if and only if the pending password logs in.
    async fn require_pending_added(&self, pending: &DbSecret, code: &str) -> Result<(), Error> {
        match self
            .scope
            .login(&pending.login(), "login with pending secret")
            .await?
        {
            Some(session) => {
                session.close().await;
                info!("the pending password was already added; nothing to do");
                Ok(())
            }
            None => Err(Error::Database {
                engine: pending.engine(),
                action: ADDING,
                code: format!(
                    "{code}; the current secret's password is no longer the account's primary \
                     password and the pending one does not log in: it was changed outside the \
                     rotation"
                ),
                hint: None,
            }),
        }
    }
}
