//! What an audit reads of Secrets Manager beyond a rotation's needs: every secret with its rotation
//! configuration (`ListSecrets`, over all pages), one secret's rotation configuration and dates
//! (`DescribeSecret`), when each version was created (`ListSecretVersionIds`), and one write, the
//! removal of a staging label from a version (`UpdateSecretVersionStage` with
//! `RemoveFromVersionId` only).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use super::SecretDescription;
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;

/// A secret's rotation schedule (`RotationRules`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationSchedule {
    /// `AutomaticallyAfterDays`.
    pub every_days: Option<i64>,
    /// `ScheduleExpression`: `rate(…)` or `cron(…)`.
    pub expression: Option<String>,
    /// `Duration`, the rotation window (`3h`, `1d`, …).
    pub window: Option<String>,
}

/// What `DescribeSecret` (or an entry of `ListSecrets`) says about a secret: who it is, how it is
/// rotated, when, and its labels. Names and dates only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretInfo {
    /// `ARN`.
    pub arn: String,
    /// `Name`.
    pub name: String,
    /// `RotationLambdaARN`: present when rotation is configured, even while it is turned off.
    pub rotation_function: Option<String>,
    /// `RotationRules`.
    pub schedule: RotationSchedule,
    /// `LastRotatedDate`.
    pub last_rotated: Option<SystemTime>,
    /// `NextRotationDate`.
    pub next_rotation: Option<SystemTime>,
    /// `CreatedDate`.
    pub created: Option<SystemTime>,
    /// `RotationEnabled` and the version→stages map.
    pub description: SecretDescription,
}

impl SecretInfo {
    /// Whether rotation is configured (a rotation function is named), whether or not it is on.
    pub fn rotation_configured(&self) -> bool {
        self.rotation_function.is_some()
    }
}

/// The Secrets Manager calls of an audit. Like [`super::SecretStore`]'s, every call runs within
/// `ctx`'s deadline, retried when the service throttles or fails transiently.
pub trait SecretInventory {
    /// `ListSecrets` over every page, `page_size` secrets per call.
    fn list(
        &self,
        page_size: i32,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<SecretInfo>, Error>>;

    /// `DescribeSecret`, by name or ARN.
    fn inspect(
        &self,
        secret_id: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<SecretInfo, Error>>;

    /// `ListSecretVersionIds` over every page: when each version was created.
    fn version_dates(
        &self,
        secret_id: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<BTreeMap<String, SystemTime>, Error>>;

    /// `UpdateSecretVersionStage` removing `stage` from `version` and attaching it nowhere. A
    /// retry refused because an earlier attempt already removed it counts as done.
    fn remove_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        version: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;
}
