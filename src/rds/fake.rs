//! An in-memory RDS for unit tests: instances and clusters found by identifier or ARN (ignoring
//! case, as RDS does), every call counted.

use std::cell::{Cell, RefCell};

use super::{DbCluster, DbInstance, RdsApi};
use crate::deadline::StepContext;
use crate::error::Error;

/// Instances and clusters, and the calls made.
#[derive(Debug, Default)]
pub(crate) struct FakeRds {
    pub(crate) instances: RefCell<Vec<DbInstance>>,
    pub(crate) clusters: RefCell<Vec<DbCluster>>,
    /// Identifiers asked for, in order (`instance:<id>`, `cluster:<id>`).
    pub(crate) asked: RefCell<Vec<String>>,
    /// When set, every call fails with `AccessDenied`.
    pub(crate) denied: Cell<bool>,
}

/// An instance `id` at `<id>.abcdefghij.us-east-1.rds.amazonaws.com`, port 5432, PostgreSQL.
pub(crate) fn instance(id: &str) -> DbInstance {
    DbInstance {
        identifier: id.to_owned(),
        arn: Some(format!("arn:aws:rds:us-east-1:123456789012:db:{id}")),
        engine: Some("postgres".to_owned()),
        address: Some(format!("{id}.abcdefghij.us-east-1.rds.amazonaws.com")),
        port: Some(5432),
        ..DbInstance::default()
    }
}

/// A cluster `id` with its writer and reader endpoints, Aurora PostgreSQL.
pub(crate) fn cluster(id: &str) -> DbCluster {
    DbCluster {
        identifier: id.to_owned(),
        engine: Some("aurora-postgresql".to_owned()),
        writer: Some(format!(
            "{id}.cluster-abcdefghij.us-east-1.rds.amazonaws.com"
        )),
        reader: Some(format!(
            "{id}.cluster-ro-abcdefghij.us-east-1.rds.amazonaws.com"
        )),
        port: Some(5432),
        master_secret: None,
    }
}

/// The ARN of cluster `id`.
pub(crate) fn cluster_arn(id: &str) -> String {
    format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}")
}

impl FakeRds {
    fn check(&self, what: String, ctx: &StepContext<'_>) -> Result<(), Error> {
        self.asked.borrow_mut().push(what.clone());
        if self.denied.get() {
            let operation = if what.starts_with("cluster:") {
                "DescribeDBClusters"
            } else {
                "DescribeDBInstances"
            };
            return Err(Error::Rds {
                secret_id: ctx.secret_id.to_owned(),
                operation,
                subject: what,
                code: Some("AccessDenied".to_owned()),
                detail: "AccessDenied: not authorized".to_owned(),
            });
        }
        Ok(())
    }

    /// Calls made so far.
    pub(crate) fn calls(&self) -> usize {
        self.asked.borrow().len()
    }
}

impl RdsApi for FakeRds {
    async fn instance(&self, id: &str, ctx: &StepContext<'_>) -> Result<Option<DbInstance>, Error> {
        self.check(format!("instance:{id}"), ctx)?;
        Ok(self
            .instances
            .borrow()
            .iter()
            .find(|i| {
                i.identifier.eq_ignore_ascii_case(id)
                    || i.arn.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(id))
            })
            .cloned())
    }

    async fn cluster(&self, id: &str, ctx: &StepContext<'_>) -> Result<Option<DbCluster>, Error> {
        self.check(format!("cluster:{id}"), ctx)?;
        Ok(self
            .clusters
            .borrow()
            .iter()
            .find(|c| c.identifier.eq_ignore_ascii_case(id) || cluster_arn(&c.identifier) == id)
            .cloned())
    }
}
