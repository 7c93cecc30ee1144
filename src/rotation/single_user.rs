//! setSecret, single user (docs/protocol.md section 3): the user changes its own password.
//!
//! The order of logins makes no login that is expected to fail on the normal path: current first
//! (it logs in, and changes its own password to pending's). Only when the server refuses current
//! does the step try pending, which logs in when a setSecret of this rotation already succeeded
//! (a retry: nothing to do), and then `AWSPREVIOUS`, which logs in when the database still holds
//! the password of the version before current (a rotation whose finishSecret never ran, or a
//! password restored by hand). Every candidate names the same user, host and port as pending,
//! checked before any login.

use tracing::{info, warn};

use super::{Rotation, use_then_close};
use crate::credentials::{DbSecret, Login, Password};
use crate::error::Error;
use crate::protocol::Stage;
use crate::rds::RdsApi;
use crate::rotators::{OwnPassword, Rotator, Session};
use crate::secrets::SecretStore;

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    pub(super) async fn set_secret_single_user(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let scope = &self.scope;
        scope.require_same_account(pending, current, "current user", "current host")?;
        let login = current.login();
        if let Some(session) = scope.login(&login, "login with current secret").await? {
            return self.set_own(session, &login, pending.password()).await;
        }
        if let Some(session) = scope
            .login(&pending.login(), "login with pending secret")
            .await?
        {
            session.close().await;
            self.require_password_checked(&pending.login()).await?;
            info!("pending secret already logs in; nothing to do");
            return Ok(());
        }
        let Some(previous) = self.previous(current, pending).await? else {
            return Err(scope.login_failed(scope.secret_id(), "previous, current, or pending"));
        };
        let Some(session) = scope.login(&previous, "login with previous secret").await? else {
            return Err(scope.login_failed(scope.secret_id(), "previous, current, or pending"));
        };
        self.set_own(session, &previous, pending.password()).await
    }

    /// As the user logged in with `login`, changes its own password to `new`. The credential
    /// that opened the session goes with it: MySQL's `REPLACE` needs its password
    /// (docs/protocol.md 5.7).
    async fn set_own(
        &self,
        session: R::Session,
        login: &Login,
        new: &Password,
    ) -> Result<(), Error> {
        use_then_close(session, async |session| {
            session.set_own_password(login, new, &self.scope.ctx).await
        })
        .await?;
        info!(user = login.username(), "password set");
        Ok(())
    }

    /// `AWSPREVIOUS`, with current's TLS settings, when it names pending's user, host and port;
    /// `None` when it is absent or unusable.
    async fn previous(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<Option<Login>, Error> {
        let previous = match self.scope.read_if_exists(Stage::Previous, None).await {
            Ok(Some(previous)) => previous,
            Ok(None) => return Ok(None),
            Err(e @ Error::InvalidSecret { .. }) => {
                warn!(error = %e, "ignoring unusable AWSPREVIOUS version");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.scope.require_same_account(
            pending,
            &previous,
            "previous valid user",
            "previous host",
        )?;
        Ok(Some(previous.login().with_tls_of(&current.login())))
    }

    /// Where an account may accept every password (Redis `nopass`), proves that `pending`
    /// logging in means its password was set: a wrong password must be refused. Otherwise the
    /// rotation would complete and revoke nothing, so the step fails.
    pub(super) async fn require_password_checked(&self, pending: &Login) -> Result<(), Error> {
        if !pending.engine().accounts_may_accept_any_password() {
            return Ok(());
        }
        let wrong = pending.clone().with_password(Password::new(format!(
            "wrong-{:032x}",
            rand::random::<u128>()
        )));
        let Some(session) = self
            .scope
            .login(&wrong, "login with a wrong password")
            .await?
        else {
            return Ok(());
        };
        session.close().await;
        Err(Error::Database {
            engine: pending.engine(),
            action: "checking that the account refuses a wrong password",
            code: "a wrong password logs in: the user accepts any password (nopass), so no \
                   rotation can revoke one"
                .to_owned(),
            hint: Some("give it a password and store that in the secret".to_owned()),
        })
    }
}
