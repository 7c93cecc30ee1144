//! [`CacheUserApi`] over `aws-sdk-elasticache` and `aws-sdk-memorydb`. Each client takes the
//! function's SDK configuration (Region, credentials, HTTPS client, `AWS_ENDPOINT_URL_ELASTICACHE`,
//! `AWS_ENDPOINT_URL_MEMORYDB` and `AWS_ENDPOINT_URL`) and is built on its first call: a container
//! that never rotates such a user never builds either, and its cold start does not pay for them.
//! Calls run as Secrets Manager's and RDS's do (`crate::aws::retry`): the SDK's own retries off,
//! all attempts of a call within the step's budget, one invocation id for all of them.

mod elasticache;
mod memorydb;

use std::sync::OnceLock;

use aws_config::SdkConfig;

use super::{CacheUser, CacheUserApi, Change, PasswordSet, Service, UserArn};
use crate::aws::retry::single_attempts;
use crate::deadline::StepContext;
use crate::error::Error;

/// [`CacheUserApi`] over the AWS SDK: one client per service, each built on first use.
#[derive(Debug)]
pub struct SdkCacheUsers {
    sdk_config: SdkConfig,
    elasticache: OnceLock<aws_sdk_elasticache::Client>,
    memorydb: OnceLock<aws_sdk_memorydb::Client>,
}

impl SdkCacheUsers {
    /// Keeps the SDK configuration; the clients are built on their first calls.
    pub fn new(sdk_config: &SdkConfig) -> Self {
        SdkCacheUsers {
            sdk_config: sdk_config.clone(),
            elasticache: OnceLock::new(),
            memorydb: OnceLock::new(),
        }
    }

    /// Whether the client of `service` has been built (it is, from its first call on).
    pub fn client_built(&self, service: Service) -> bool {
        match service {
            Service::ElastiCache => self.elasticache.get().is_some(),
            Service::MemoryDb => self.memorydb.get().is_some(),
        }
    }

    fn elasticache(&self) -> &aws_sdk_elasticache::Client {
        self.elasticache.get_or_init(|| {
            let (retries, timeouts) = single_attempts();
            let config = aws_sdk_elasticache::config::Builder::from(&self.sdk_config)
                .retry_config(retries)
                .timeout_config(timeouts)
                .build();
            aws_sdk_elasticache::Client::from_conf(config)
        })
    }

    fn memorydb(&self) -> &aws_sdk_memorydb::Client {
        self.memorydb.get_or_init(|| {
            let (retries, timeouts) = single_attempts();
            let config = aws_sdk_memorydb::config::Builder::from(&self.sdk_config)
                .retry_config(retries)
                .timeout_config(timeouts)
                .build();
            aws_sdk_memorydb::Client::from_conf(config)
        })
    }
}

impl CacheUserApi for SdkCacheUsers {
    async fn describe(
        &self,
        user: &UserArn,
        ctx: &StepContext<'_>,
    ) -> Result<Option<CacheUser>, Error> {
        match user.service() {
            Service::ElastiCache => elasticache::describe(self.elasticache(), user, ctx).await,
            Service::MemoryDb => memorydb::describe(self.memorydb(), user, ctx).await,
        }
    }

    async fn set_passwords(
        &self,
        user: &UserArn,
        passwords: &PasswordSet,
        ctx: &StepContext<'_>,
    ) -> Result<Change, Error> {
        match user.service() {
            Service::ElastiCache => {
                elasticache::set_passwords(self.elasticache(), user, passwords, ctx).await
            }
            Service::MemoryDb => {
                memorydb::set_passwords(self.memorydb(), user, passwords, ctx).await
            }
        }
    }
}

/// A count as the services give it (`i32`), when it is one.
fn count(value: Option<i32>) -> Option<u32> {
    value.and_then(|n| u32::try_from(n).ok())
}
