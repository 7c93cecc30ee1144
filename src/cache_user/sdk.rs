//! [`CacheUserApi`] over `aws-sdk-elasticache` and `aws-sdk-memorydb`. Each client takes the
//! function's SDK configuration (Region, credentials, HTTPS client, `AWS_ENDPOINT_URL_ELASTICACHE`,
//! `AWS_ENDPOINT_URL_MEMORYDB` and `AWS_ENDPOINT_URL`) and is built on its first call: a container
//! that never rotates such a user never builds either, and its cold start does not pay for them.
//! Calls run as Secrets Manager's and RDS's do (`crate::aws::retry`): the SDK's own retries off,
//! all attempts of a call within the step's budget, one invocation id for all of them.
//!
//! Each service's client is behind the cargo feature of its engine's name (`elasticache`,
//! `memorydb`), both on by default; a build without one answers every call for that service
//! with an error naming the feature ([`Service::in_this_build`]).

#[cfg(feature = "elasticache")]
mod elasticache;
#[cfg(feature = "memorydb")]
mod memorydb;

#[cfg(any(feature = "elasticache", feature = "memorydb"))]
use std::sync::OnceLock;

use aws_config::SdkConfig;

use super::{CacheUser, CacheUserApi, Change, PasswordSet, Service, UserArn};
#[cfg(any(feature = "elasticache", feature = "memorydb"))]
use crate::aws::retry::single_attempts;
use crate::deadline::StepContext;
use crate::error::Error;

/// [`CacheUserApi`] over the AWS SDK: one client per service, each built on first use.
#[derive(Debug)]
pub struct SdkCacheUsers {
    #[cfg_attr(
        not(any(feature = "elasticache", feature = "memorydb")),
        expect(dead_code, reason = "read by the clients of the features")
    )]
    sdk_config: SdkConfig,
    #[cfg(feature = "elasticache")]
    elasticache: OnceLock<aws_sdk_elasticache::Client>,
    #[cfg(feature = "memorydb")]
    memorydb: OnceLock<aws_sdk_memorydb::Client>,
}

impl SdkCacheUsers {
    /// Keeps the SDK configuration; the clients are built on their first calls.
    pub fn new(sdk_config: &SdkConfig) -> Self {
        SdkCacheUsers {
            sdk_config: sdk_config.clone(),
            #[cfg(feature = "elasticache")]
            elasticache: OnceLock::new(),
            #[cfg(feature = "memorydb")]
            memorydb: OnceLock::new(),
        }
    }

    /// Whether the client of `service` has been built (it is, from its first call on; never in
    /// a build without its feature).
    pub fn client_built(&self, service: Service) -> bool {
        match service {
            #[cfg(feature = "elasticache")]
            Service::ElastiCache => self.elasticache.get().is_some(),
            #[cfg(feature = "memorydb")]
            Service::MemoryDb => self.memorydb.get().is_some(),
            #[cfg(not(all(feature = "elasticache", feature = "memorydb")))]
            _ => false,
        }
    }

    #[cfg(feature = "elasticache")]
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

    #[cfg(feature = "memorydb")]
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
            #[cfg(feature = "elasticache")]
            Service::ElastiCache => elasticache::describe(self.elasticache(), user, ctx).await,
            #[cfg(feature = "memorydb")]
            Service::MemoryDb => memorydb::describe(self.memorydb(), user, ctx).await,
            #[cfg(not(all(feature = "elasticache", feature = "memorydb")))]
            service => Err(not_in_this_build(service, "DescribeUsers", user, ctx)),
        }
    }

    async fn set_passwords(
        &self,
        user: &UserArn,
        passwords: &PasswordSet,
        ctx: &StepContext<'_>,
    ) -> Result<Change, Error> {
        match user.service() {
            #[cfg(feature = "elasticache")]
            Service::ElastiCache => {
                elasticache::set_passwords(self.elasticache(), user, passwords, ctx).await
            }
            #[cfg(feature = "memorydb")]
            Service::MemoryDb => {
                memorydb::set_passwords(self.memorydb(), user, passwords, ctx).await
            }
            #[cfg(not(all(feature = "elasticache", feature = "memorydb")))]
            service => {
                let _ = passwords;
                Err(not_in_this_build(
                    service,
                    service.modify_operation(),
                    user,
                    ctx,
                ))
            }
        }
    }
}

/// The error of a call to a service this build has no client for.
#[cfg(not(all(feature = "elasticache", feature = "memorydb")))]
fn not_in_this_build(
    service: Service,
    operation: &'static str,
    user: &UserArn,
    ctx: &StepContext<'_>,
) -> Error {
    service.error(
        ctx,
        operation,
        user,
        None,
        format!(
            "this build of the function has no {service} client (cargo feature `{}`)",
            service.engine()
        ),
    )
}

/// A count as the services give it (`i32`), when it is one.
#[cfg(any(feature = "elasticache", feature = "memorydb"))]
fn count(value: Option<i32>) -> Option<u32> {
    value.and_then(|n| u32::try_from(n).ok())
}
