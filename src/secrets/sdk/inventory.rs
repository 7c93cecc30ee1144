//! [`SecretInventory`] over the AWS SDK: the same bounded, retried calls as a rotation's.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use aws_sdk_secretsmanager::primitives::DateTime;
use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};

use super::SdkSecretStore;
use crate::aws::retry::AttemptError;
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;
use crate::secrets::{RotationSchedule, SecretDescription, SecretInfo, SecretInventory};

/// What `ListSecrets` errors name instead of a secret.
const EVERY_SECRET: &str = "*";

fn time(date: Option<&DateTime>) -> Option<SystemTime> {
    date.and_then(|d| SystemTime::try_from(*d).ok())
}

fn schedule(rules: Option<&RotationRulesType>) -> RotationSchedule {
    rules.map_or_else(RotationSchedule::default, |r| RotationSchedule {
        every_days: r.automatically_after_days(),
        expression: r.schedule_expression().map(str::to_owned),
        window: r.duration().map(str::to_owned),
    })
}

/// A non-empty string (the emulator answers `""` for an unset rotation function).
fn present(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The fields `DescribeSecret` and `ListSecrets` entries share, by their getters.
struct Fields<'a> {
    arn: Option<&'a str>,
    name: Option<&'a str>,
    rotation_enabled: Option<bool>,
    rotation_function: Option<&'a str>,
    rules: Option<&'a RotationRulesType>,
    last_rotated: Option<&'a DateTime>,
    next_rotation: Option<&'a DateTime>,
    created: Option<&'a DateTime>,
    versions: Option<&'a HashMap<String, Vec<String>>>,
    tags: &'a [Tag],
}

impl Fields<'_> {
    fn info(self, asked_for: &str) -> SecretInfo {
        SecretInfo {
            arn: self.arn.unwrap_or(asked_for).to_owned(),
            name: self.name.unwrap_or(asked_for).to_owned(),
            rotation_function: present(self.rotation_function),
            schedule: schedule(self.rules),
            last_rotated: time(self.last_rotated),
            next_rotation: time(self.next_rotation),
            created: time(self.created),
            description: SecretDescription {
                rotation_enabled: self.rotation_enabled,
                versions: self
                    .versions
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                arn: self.arn.map(str::to_owned),
                tags: self
                    .tags
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                    .collect(),
            },
        }
    }
}

impl SecretInventory for SdkSecretStore {
    async fn list(&self, page_size: i32, ctx: &StepContext<'_>) -> Result<Vec<SecretInfo>, Error> {
        let mut secrets = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let token = next_token.clone();
            let page = self
                .call(ctx, EVERY_SECRET, "ListSecrets", |layer| {
                    let request = self
                        .client
                        .list_secrets()
                        .max_results(page_size)
                        .set_next_token(token.clone())
                        .customize()
                        .config_override(layer);
                    async { request.send().await.map_err(|e| AttemptError::from_sdk(&e)) }
                })
                .await?;
            secrets.extend(page.secret_list().iter().map(|s| {
                Fields {
                    arn: s.arn(),
                    name: s.name(),
                    rotation_enabled: s.rotation_enabled(),
                    rotation_function: s.rotation_lambda_arn(),
                    rules: s.rotation_rules(),
                    last_rotated: s.last_rotated_date(),
                    next_rotation: s.next_rotation_date(),
                    created: s.created_date(),
                    versions: s.secret_versions_to_stages(),
                    tags: s.tags(),
                }
                .info("")
            }));
            // The emulator answers an empty token on the last page.
            next_token = present(page.next_token());
            if next_token.is_none() {
                return Ok(secrets);
            }
        }
    }

    async fn inspect(&self, secret_id: &str, ctx: &StepContext<'_>) -> Result<SecretInfo, Error> {
        let out = self
            .call(ctx, secret_id, "DescribeSecret", |layer| async {
                let request = self.client.describe_secret().secret_id(secret_id);
                let request = request.customize().config_override(layer);
                request.send().await.map_err(|e| AttemptError::from_sdk(&e))
            })
            .await?;
        Ok(Fields {
            arn: out.arn(),
            name: out.name(),
            rotation_enabled: out.rotation_enabled(),
            rotation_function: out.rotation_lambda_arn(),
            rules: out.rotation_rules(),
            last_rotated: out.last_rotated_date(),
            next_rotation: out.next_rotation_date(),
            created: out.created_date(),
            versions: out.version_ids_to_stages(),
            tags: out.tags(),
        }
        .info(secret_id))
    }

    async fn version_dates(
        &self,
        secret_id: &str,
        ctx: &StepContext<'_>,
    ) -> Result<BTreeMap<String, SystemTime>, Error> {
        let mut dates = BTreeMap::new();
        let mut next_token: Option<String> = None;
        loop {
            let token = next_token.clone();
            let page = self
                .call(ctx, secret_id, "ListSecretVersionIds", |layer| {
                    let request = self
                        .client
                        .list_secret_version_ids()
                        .secret_id(secret_id)
                        .set_next_token(token.clone())
                        .customize()
                        .config_override(layer);
                    async { request.send().await.map_err(|e| AttemptError::from_sdk(&e)) }
                })
                .await?;
            for version in page.versions() {
                if let (Some(id), Some(created)) =
                    (version.version_id(), time(version.created_date()))
                {
                    dates.insert(id.to_owned(), created);
                }
            }
            next_token = present(page.next_token());
            if next_token.is_none() {
                return Ok(dates);
            }
        }
    }

    async fn remove_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        version: &str,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let removed = |labels: &SecretDescription| !labels.has_stage(version, stage);
        self.change_label(ctx, secret_id, stage, removed, |layer| async {
            let request = self
                .client
                .update_secret_version_stage()
                .secret_id(secret_id)
                .version_stage(stage.as_str())
                .remove_from_version_id(version)
                .customize()
                .config_override(layer);
            request.send().await.map_err(|e| AttemptError::from_sdk(&e))
        })
        .await
    }
}
