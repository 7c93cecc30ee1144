//! Secrets Manager, seen through the four operations a rotation needs.
//!
//! [`SecretStore`] speaks the domain (stages, versions, "not found"), so the handler never imports the
//! SDK; [`SdkSecretStore`] implements it with `aws-sdk-secretsmanager`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::Error;
use crate::protocol::Stage;

/// What `DescribeSecret` tells the rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretDescription {
    /// `RotationEnabled`, when the service returned it.
    pub rotation_enabled: Option<bool>,
    /// `VersionIdsToStages`.
    pub versions: BTreeMap<String, Vec<String>>,
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

/// The Secrets Manager operations a rotation uses.
///
/// The futures need not be `Send`: the Lambda runtime polls the handler on its own task.
pub trait SecretStore {
    /// `DescribeSecret`.
    fn describe(&self, secret_id: &str) -> impl Future<Output = Result<SecretDescription, Error>>;

    /// `GetSecretValue` of the version at `stage` (and, when given, with `VersionId = version`, so the
    /// service checks that the two still agree). `Ok(None)` means the version has no value or the
    /// label is attached nowhere (`ResourceNotFoundException`).
    fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, Error>>;

    /// `PutSecretValue` creating version `token` labelled `AWSPENDING`.
    fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// `UpdateSecretVersionStage` moving `AWSCURRENT` from `from_version` to `token`, in one call.
    fn promote(
        &self,
        secret_id: &str,
        token: &str,
        from_version: &str,
    ) -> impl Future<Output = Result<(), Error>>;
}

/// [`SecretStore`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkSecretStore {
    client: Client,
}

impl SdkSecretStore {
    /// Builds the client once per container. `endpoint` (`SECRETS_MANAGER_ENDPOINT`), when given,
    /// wins over the SDK's own endpoint settings. Calls retry with the SDK's standard strategy (three
    /// attempts) so a brief throttle does not fail a rotation, and each attempt is bounded in time.
    pub fn new(sdk_config: &SdkConfig, endpoint: Option<&str>) -> Self {
        let mut builder = aws_sdk_secretsmanager::config::Builder::from(sdk_config)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(url) = endpoint {
            builder = builder.endpoint_url(url);
        }
        SdkSecretStore {
            client: Client::from_conf(builder.build()),
        }
    }
}

/// Converts an SDK error without keeping anything of the request: the service's code and message,
/// or the transport error's chain.
fn sdk_error<E, R>(secret_id: &str, operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let code = err.code().map(str::to_owned);
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    Error::SecretsManager {
        secret_id: secret_id.to_owned(),
        operation,
        code,
        detail,
    }
}

impl SecretStore for SdkSecretStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, Error> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| sdk_error(secret_id, "DescribeSecret", e))?;
        Ok(SecretDescription {
            rotation_enabled: out.rotation_enabled(),
            versions: out
                .version_ids_to_stages()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }

    async fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage.as_str())
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(out) => match out.secret_string {
                Some(value) => Ok(Some(value)),
                None if out.secret_binary.is_some() => Err(Error::invalid_secret(
                    secret_id,
                    stage,
                    "value is binary (SecretBinary); a JSON SecretString is required",
                )),
                None => Ok(None),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(secret_id, "GetSecretValue", e)),
        }
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
    ) -> Result<(), Error> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages(Stage::Pending.as_str())
            .set_rotation_token(rotation_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error(secret_id, "PutSecretValue", e))?;
        Ok(())
    }

    async fn promote(&self, secret_id: &str, token: &str, from_version: &str) -> Result<(), Error> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(Stage::Current.as_str())
            .move_to_version_id(token)
            .remove_from_version_id(from_version)
            .send()
            .await
            .map_err(|e| sdk_error(secret_id, "UpdateSecretVersionStage", e))?;
        Ok(())
    }
}
