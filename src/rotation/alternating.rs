//! setSecret, alternating users (docs/protocol.md section 3 and 5.8): the master creates or
//! updates the other account after the current credential proved itself.
//!
//! No login of pending first: the master's change is idempotent (the same password, the same
//! grants and membership, the same checks), so a retry after success simply makes it again.

use tracing::info;

use super::{Plan, Rotation, use_then_close};
use crate::credentials::DbSecret;
use crate::error::Error;
use crate::rds::RdsApi;
use crate::rotators::{CloneManagement, Rotator, Session};
use crate::secrets::SecretStore;

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    pub(super) async fn set_secret_alternating(
        &self,
        plan: &Plan,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let scope = &self.scope;
        let expected = plan.pending_user(current);
        if pending.username() != expected {
            return Err(scope.mismatch(
                "user",
                pending.username(),
                "current user or clone",
                current.username(),
            ));
        }
        scope.require_same_endpoint(pending, current, "current host")?;
        // The current credential must work before anything changes: a forged secret cannot aim
        // the master at an account it does not own.
        let Some(session) = scope
            .login(&current.login(), "login with current secret")
            .await?
        else {
            return Err(scope.login_failed(scope.secret_id(), "current"));
        };
        let account = session.account();
        session.close().await;

        let masterarn = plan.masterarn.as_deref().unwrap_or_default();
        let master = scope.master(current, masterarn).await?;
        let session = scope.master_session(&master).await?;
        let (current_login, pending_login) = (current.login(), pending.login());
        use_then_close(session, async |session| {
            session
                .set_password_as_master(&account, &current_login, &pending_login, &scope.ctx)
                .await
        })
        .await?;
        info!(user = pending.username(), "password set by the master user");
        Ok(())
    }
}
