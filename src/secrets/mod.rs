//! Secrets Manager, seen through the operations a rotation needs.
//!
//! [`SecretStore`] speaks the domain (stages, versions, "not found" where a step expects it), so
//! the handler never imports the SDK; [`SdkSecretStore`] implements it with
//! `aws-sdk-secretsmanager`, every call under the step's time budget and retried by
//! [`RetryPolicy`] when the service throttles or fails transiently.

#[cfg(test)]
pub(crate) mod fake;
mod inventory;
mod sdk;

use std::collections::BTreeMap;
use std::future::Future;

use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;

pub use crate::aws::RetryPolicy;
pub use inventory::{RotationSchedule, SecretInfo, SecretInventory};
pub use sdk::SdkSecretStore;

/// What `DescribeSecret` tells the rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretDescription {
    /// `RotationEnabled`, when the service returned it.
    pub rotation_enabled: Option<bool>,
    /// `VersionIdsToStages`.
    pub versions: BTreeMap<String, Vec<String>>,
    /// `ARN`: the secret's full ARN, when the service returned it.
    pub arn: Option<String>,
    /// `Tags`, as key and value, in the service's order.
    pub tags: Vec<(String, String)>,
}

impl SecretDescription {
    /// The stages attached to `version`, or `None` when it is not a version of the secret.
    pub fn stages(&self, version: &str) -> Option<&[String]> {
        self.versions.get(version).map(Vec::as_slice)
    }

    /// Whether `version` carries `stage`.
    pub fn has_stage(&self, version: &str, stage: Stage) -> bool {
        self.stages(version)
            .is_some_and(|stages| stages.iter().any(|s| s == stage.as_str()))
    }

    /// The version that carries `stage`, if any.
    pub fn version_with(&self, stage: Stage) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage.as_str()))
            .map(|(version, _)| version.as_str())
    }
}

/// The Secrets Manager operations a rotation uses. Every call runs within `ctx`'s deadline and
/// counts its retries in `ctx`'s tally; running out of time is [`Error::DeadlineExceeded`] naming
/// the step and the operation.
///
/// Reading a version comes in two forms, so that each caller says whether "not found"
/// (`ResourceNotFoundException`) is an answer: [`SecretStore::get_if_exists`] where the protocol
/// expects absence (the token's pending value in createSecret, `AWSPREVIOUS` in setSecret),
/// [`SecretStore::get`] everywhere else, where it is a [`Error::SecretsManager`] naming the
/// operation and the secret.
///
/// The futures need not be `Send`: the Lambda runtime polls the handler on its own task.
pub trait SecretStore {
    /// `DescribeSecret`.
    fn describe(
        &self,
        secret_id: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<SecretDescription, Error>>;

    /// `GetSecretValue` of the version at `stage` (and, when given, with `VersionId = version`,
    /// so the service checks that the two still agree). Not found is an error.
    fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<String, Error>>;

    /// Like [`SecretStore::get`], where the version may have no value yet or the label may be
    /// attached nowhere: `Ok(None)` for `ResourceNotFoundException`.
    fn get_if_exists(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Option<String>, Error>>;

    /// `PutSecretValue` creating version `token` labelled `AWSPENDING`.
    fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// `UpdateSecretVersionStage` moving `AWSCURRENT` from `from_version` to `token`, in one call.
    fn promote(
        &self,
        secret_id: &str,
        token: &str,
        from_version: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;
}
