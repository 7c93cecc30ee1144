//! The guard (docs/protocol.md section 2): the checks every step passes first, in the
//! reference's order, on one `DescribeSecret`.

use tracing::info;

use super::Scope;
use crate::error::Error;
use crate::protocol::Stage;
use crate::rotators::Connect;
use crate::secrets::{SecretDescription, SecretStore};

/// What the guard found.
#[derive(Debug)]
pub enum Guarded {
    /// The token is already `AWSCURRENT`: every step succeeds, doing nothing.
    AlreadyCurrent,
    /// The token is `AWSPENDING`: the step runs, with the description (finishSecret reuses it).
    Pending(SecretDescription),
}

impl<S: SecretStore, R: Connect, A> Scope<'_, S, R, A> {
    /// Rotation enabled (a missing key is tolerated), the token a version of the secret, already
    /// `AWSCURRENT` (success), else `AWSPENDING`.
    pub async fn guard(&self, token: &str) -> Result<Guarded, Error> {
        let secret_id = self.secret_id();
        let description = self.app.store.describe(secret_id, &self.ctx).await?;
        if description.rotation_enabled == Some(false) {
            return Err(Error::RotationDisabled {
                secret_id: secret_id.to_owned(),
            });
        }
        if description.stages(token).is_none() {
            return Err(Error::UnknownVersion {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            });
        }
        if description.has_stage(token, Stage::Current) {
            info!("version already staged AWSCURRENT; nothing to do");
            return Ok(Guarded::AlreadyCurrent);
        }
        if !description.has_stage(token, Stage::Pending) {
            return Err(Error::NotPending {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            });
        }
        Ok(Guarded::Pending(description))
    }
}
