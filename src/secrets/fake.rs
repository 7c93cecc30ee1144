//! An in-memory Secrets Manager for unit tests, beside the port it fakes: secrets by ARN (found
//! by ARN or name), their versions with labels, values and creation dates, and the service's
//! rules the protocol depends on: "not found" for a valueless version, `VersionId` and
//! `VersionStage` that must agree, `ResourceExistsException` for a token reused with other
//! content, `AWSPREVIOUS` attached when `AWSCURRENT` moves, and access denied for chosen ids.
//! Every call is counted, so tests hold the protocol to its call budget.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SecretDescription, SecretInfo, SecretInventory, SecretStore};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;

/// The calls made, by operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) describe: usize,
    pub(crate) get: usize,
    pub(crate) put: usize,
    pub(crate) promote: usize,
    pub(crate) remove: usize,
    pub(crate) list: usize,
}

impl Calls {
    /// Every call.
    pub(crate) fn total(self) -> usize {
        self.describe + self.get + self.put + self.promote + self.remove + self.list
    }

    /// The calls that change a secret.
    pub(crate) fn writes(self) -> usize {
        self.put + self.promote + self.remove
    }
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) value: Option<String>,
    pub(crate) stages: Vec<String>,
    pub(crate) created: SystemTime,
}

/// A secret: what `DescribeSecret` says of it (its `versions` are filled from `versions` when it
/// is read) and its versions by id.
#[derive(Debug, Clone)]
pub(crate) struct FakeSecret {
    pub(crate) info: SecretInfo,
    pub(crate) versions: BTreeMap<String, Version>,
}

/// What the fake service holds and was asked.
#[derive(Debug, Default)]
pub(crate) struct Service {
    pub(crate) secrets: RefCell<BTreeMap<String, FakeSecret>>,
    /// Names or ARNs whose calls fail with `AccessDeniedException`.
    pub(crate) denied: RefCell<BTreeSet<String>>,
    pub(crate) calls: Cell<Calls>,
    /// The `RotationToken` of every `PutSecretValue`, in order.
    pub(crate) rotation_tokens: RefCell<Vec<Option<String>>>,
}

/// The fake service: a handle on one [`Service`], so a test keeps one while the
/// [`App`](crate::app::App) under test holds another.
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeSecrets(Rc<Service>);

impl Deref for FakeSecrets {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.0
    }
}

/// The ARN the fake gives the secret named `name`.
pub(crate) fn arn_of(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf")
}

/// A fixed instant `days` days into the fake's calendar.
pub(crate) fn day(days: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((20_000 + days) * 86_400)
}

/// A Secrets Manager error with `code`, as the SDK store reports it.
pub(crate) fn service_error(secret_id: &str, operation: &'static str, code: &str) -> Error {
    Error::SecretsManager {
        secret_id: secret_id.to_owned(),
        operation,
        code: Some(code.to_owned()),
        detail: format!("{code}: answered by the fake service"),
    }
}

impl FakeSecrets {
    /// Adds the secret `arn` named `name`, rotation on, with version `version` labelled
    /// `AWSCURRENT` holding `current`. Returns its ARN.
    pub(crate) fn add_as(&self, arn: &str, name: &str, version: &str, current: &str) -> String {
        let info = SecretInfo {
            arn: arn.to_owned(),
            name: name.to_owned(),
            description: SecretDescription {
                rotation_enabled: Some(true),
                arn: Some(arn.to_owned()),
                ..SecretDescription::default()
            },
            ..SecretInfo::default()
        };
        self.secrets.borrow_mut().insert(
            arn.to_owned(),
            FakeSecret {
                info,
                versions: BTreeMap::new(),
            },
        );
        self.insert(arn, version, Some(current), &["AWSCURRENT"], day(0));
        arn.to_owned()
    }

    /// [`Self::add_as`] with the fake's ARN for `name` and version `v1`.
    pub(crate) fn add(&self, name: &str, current: &str) -> String {
        self.add_as(&arn_of(name), name, "v1", current)
    }

    /// Adds or replaces version `id` of `arn`.
    pub(crate) fn insert(
        &self,
        arn: &str,
        id: &str,
        value: Option<&str>,
        stages: &[&str],
        created: SystemTime,
    ) {
        self.secrets
            .borrow_mut()
            .get_mut(arn)
            .expect("a secret added before")
            .versions
            .insert(
                id.to_owned(),
                Version {
                    value: value.map(str::to_owned),
                    stages: stages.iter().map(|s| (*s).to_owned()).collect(),
                    created,
                },
            );
    }

    /// Changes what `DescribeSecret` says of `arn`.
    pub(crate) fn edit(&self, arn: &str, edit: impl FnOnce(&mut SecretInfo)) {
        edit(&mut self.secrets.borrow_mut().get_mut(arn).unwrap().info);
    }

    /// Version `id` of `arn`.
    pub(crate) fn version(&self, arn: &str, id: &str) -> Option<Version> {
        self.secrets.borrow()[arn].versions.get(id).cloned()
    }

    /// Every version of `arn`, for before/after comparisons.
    pub(crate) fn versions(&self, arn: &str) -> BTreeMap<String, Version> {
        self.secrets.borrow()[arn].versions.clone()
    }

    /// The labels of every version of `arn`.
    pub(crate) fn labels(&self, arn: &str) -> BTreeMap<String, Vec<String>> {
        self.secrets.borrow()[arn]
            .versions
            .iter()
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect()
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        let mut calls = self.calls.get();
        f(&mut calls);
        self.calls.set(calls);
    }

    /// The ARN of the secret `id` (an ARN or a name).
    fn find(&self, id: &str, operation: &'static str) -> Result<String, Error> {
        if self.denied.borrow().contains(id) {
            return Err(service_error(id, operation, "AccessDeniedException"));
        }
        self.secrets
            .borrow()
            .iter()
            .find(|(arn, secret)| *arn == id || secret.info.name == id)
            .map(|(arn, _)| arn.clone())
            .ok_or_else(|| service_error(id, operation, "ResourceNotFoundException"))
    }

    /// What `DescribeSecret` says: versions without a label are not listed.
    fn info(&self, arn: &str) -> SecretInfo {
        let secrets = self.secrets.borrow();
        let secret = &secrets[arn];
        let mut info = secret.info.clone();
        info.description.versions = secret
            .versions
            .iter()
            .filter(|(_, v)| !v.stages.is_empty())
            .map(|(id, v)| (id.clone(), v.stages.clone()))
            .collect();
        info
    }
}

impl SecretStore for FakeSecrets {
    async fn describe(&self, id: &str, _: &StepContext<'_>) -> Result<SecretDescription, Error> {
        self.count(|c| c.describe += 1);
        Ok(self.info(&self.find(id, "DescribeSecret")?).description)
    }

    async fn get(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        ctx: &StepContext<'_>,
    ) -> Result<String, Error> {
        self.get_if_exists(secret_id, stage, version, ctx)
            .await?
            .ok_or_else(|| service_error(secret_id, "GetSecretValue", "ResourceNotFoundException"))
    }

    async fn get_if_exists(
        &self,
        secret_id: &str,
        stage: Stage,
        version: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<Option<String>, Error> {
        self.count(|c| c.get += 1);
        let arn = self.find(secret_id, "GetSecretValue")?;
        let secrets = self.secrets.borrow();
        let Some((id, found)) = secrets[&arn]
            .versions
            .iter()
            .find(|(_, v)| v.stages.iter().any(|s| s == stage.as_str()))
        else {
            return Ok(None);
        };
        if version.is_some_and(|v| v != id) {
            return Err(service_error(
                secret_id,
                "GetSecretValue",
                "InvalidRequestException",
            ));
        }
        Ok(found.value.clone())
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        rotation_token: Option<&str>,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count(|c| c.put += 1);
        let arn = self.find(secret_id, "PutSecretValue")?;
        self.rotation_tokens
            .borrow_mut()
            .push(rotation_token.map(str::to_owned));
        let mut secrets = self.secrets.borrow_mut();
        let versions = &mut secrets.get_mut(&arn).unwrap().versions;
        if let Some(Version {
            value: Some(existing),
            ..
        }) = versions.get(token)
        {
            if existing != value {
                return Err(service_error(
                    secret_id,
                    "PutSecretValue",
                    "ResourceExistsException",
                ));
            }
        }
        for v in versions.values_mut() {
            v.stages.retain(|s| s != "AWSPENDING");
        }
        let entry = versions.entry(token.into()).or_insert(Version {
            value: None,
            stages: vec![],
            created: day(0),
        });
        entry.value = Some(value.into());
        entry.stages.push("AWSPENDING".into());
        Ok(())
    }

    async fn promote(
        &self,
        secret_id: &str,
        token: &str,
        from: &str,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count(|c| c.promote += 1);
        let arn = self.find(secret_id, "UpdateSecretVersionStage")?;
        let mut secrets = self.secrets.borrow_mut();
        let versions = &mut secrets.get_mut(&arn).unwrap().versions;
        if !versions
            .get(from)
            .is_some_and(|v| v.stages.iter().any(|s| s == "AWSCURRENT"))
            || !versions.contains_key(token)
        {
            return Err(service_error(
                secret_id,
                "UpdateSecretVersionStage",
                "InvalidParameterException",
            ));
        }
        for (id, v) in versions.iter_mut() {
            v.stages.retain(|s| s != "AWSCURRENT" && s != "AWSPREVIOUS");
            if id == token {
                v.stages.push("AWSCURRENT".into());
            } else if id == from {
                v.stages.push("AWSPREVIOUS".into());
            }
        }
        Ok(())
    }
}

impl SecretInventory for FakeSecrets {
    async fn list(&self, _: i32, _: &StepContext<'_>) -> Result<Vec<SecretInfo>, Error> {
        self.count(|c| c.list += 1);
        let arns: Vec<String> = self.secrets.borrow().keys().cloned().collect();
        Ok(arns.iter().map(|arn| self.info(arn)).collect())
    }

    async fn inspect(&self, secret_id: &str, _: &StepContext<'_>) -> Result<SecretInfo, Error> {
        self.count(|c| c.describe += 1);
        Ok(self.info(&self.find(secret_id, "DescribeSecret")?))
    }

    async fn version_dates(
        &self,
        secret_id: &str,
        _: &StepContext<'_>,
    ) -> Result<BTreeMap<String, SystemTime>, Error> {
        self.count(|c| c.list += 1);
        let arn = self.find(secret_id, "ListSecretVersionIds")?;
        Ok(self.secrets.borrow()[&arn]
            .versions
            .iter()
            .map(|(id, v)| (id.clone(), v.created))
            .collect())
    }

    async fn remove_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        version: &str,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.count(|c| c.remove += 1);
        let arn = self.find(secret_id, "UpdateSecretVersionStage")?;
        let mut secrets = self.secrets.borrow_mut();
        if let Some(v) = secrets.get_mut(&arn).unwrap().versions.get_mut(version) {
            v.stages.retain(|s| s != stage.as_str());
        }
        Ok(())
    }
}
