//! RDS, seen through what the alternating-users path needs (docs/protocol.md 3, setSecret steps
//! 5 and 6): where an RDS-managed master secret's database is, and whether the rotated secret's
//! host is the master's database, a read replica of its instance, or the reader endpoint or an
//! instance of its cluster.
//!
//! [`RdsApi`] speaks the domain (an instance, a cluster, "not found"), so the lookups run against
//! a fake in unit tests; [`SdkRds`] implements it with `aws-sdk-rds`, each call under the step's
//! deadline and retried like Secrets Manager's. [`Rds`] holds the lookups and remembers, for the
//! container's lifetime, where each RDS-managed master secret's database is.
//!
//! # What counts as proof
//!
//! Nothing a secret says about itself is taken on trust. An RDS-managed master secret's tag names
//! its database, and that database must name the secret back (`MasterUserSecret`). A host is the
//! endpoint of an instance only when RDS gives that instance exactly that endpoint; the only
//! normalisation is DNS's own (ASCII case, one trailing dot). Tags of the rotated secret are never
//! read. RDS is asked only about host names shaped like RDS endpoints
//! (`<id>.<…>.<region>.rds.<domain>`): no other name can equal an endpoint RDS gives.
//!
//! # Layout
//!
//! - `host`: host names: comparison, RDS endpoint shape;
//! - `sdk`: [`SdkRds`], the SDK client, built on first use;
//! - `topology`: [`Rds`], the lookups and the per-container cache.

mod host;
mod sdk;
mod topology;

use std::future::Future;

use crate::deadline::StepContext;
use crate::error::Error;

pub use sdk::SdkRds;
pub use topology::{CLUSTER_TAG, Database, INSTANCE_TAG, ManagedMaster, Rds, Relation};

/// A DB instance, as `DescribeDBInstances` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbInstance {
    /// `DBInstanceIdentifier`.
    pub identifier: String,
    /// `DBInstanceArn`.
    pub arn: Option<String>,
    /// `Engine`.
    pub engine: Option<String>,
    /// `Endpoint.Address` (absent while the instance is being created).
    pub address: Option<String>,
    /// `Endpoint.Port`.
    pub port: Option<u16>,
    /// `ReadReplicaSourceDBInstanceIdentifier`: the instance this one replicates (an identifier,
    /// or an ARN for a replica in another Region).
    pub replica_source: Option<String>,
    /// `DBClusterIdentifier`: the Aurora cluster this instance belongs to.
    pub cluster: Option<String>,
    /// `MasterUserSecret.SecretArn`: the secret in which RDS manages the master password.
    pub master_secret: Option<String>,
}

/// A DB cluster, as `DescribeDBClusters` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCluster {
    /// `DBClusterIdentifier`.
    pub identifier: String,
    /// `Engine`.
    pub engine: Option<String>,
    /// `Endpoint`: the writer endpoint.
    pub writer: Option<String>,
    /// `ReaderEndpoint`.
    pub reader: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `MasterUserSecret.SecretArn`.
    pub master_secret: Option<String>,
}

/// The RDS operations the alternating-users path uses, read-only. Every call runs within `ctx`'s
/// deadline and counts its retries in `ctx`'s tally. "Not found" is `Ok(None)`; any other
/// failure is an error ([`Error::Rds`], or [`Error::DeadlineExceeded`] naming the call).
///
/// The futures need not be `Send`: the Lambda runtime polls the handler on its own task.
pub trait RdsApi {
    /// `DescribeDBInstances` of one instance, by identifier or ARN.
    fn instance(
        &self,
        id: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Option<DbInstance>, Error>>;

    /// `DescribeDBClusters` of one cluster, by identifier or ARN.
    fn cluster(
        &self,
        id: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Option<DbCluster>, Error>>;
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
