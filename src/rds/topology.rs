//! [`Rds`]: where an RDS-managed master secret's database is (remembered per container), which
//! RDS database a master's host is, and how another host relates to it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use tracing::info;

use super::host::{rds_shape, same_host};
use super::{DbCluster, DbInstance, RdsApi};
use crate::credentials::Endpoint;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::Error;
use crate::protocol::Stage;
use crate::secrets::{SecretDescription, SecretStore};

/// The tag RDS puts on the master secret of a DB instance it manages.
pub const INSTANCE_TAG: &str = "aws:rds:primaryDBInstanceArn";
/// The tag RDS puts on the master secret of a DB cluster it manages.
pub const CLUSTER_TAG: &str = "aws:rds:primaryDBClusterArn";

/// How many RDS-managed master secrets a container remembers; past that it starts afresh.
const REMEMBERED: usize = 256;

/// An RDS database a master acts on, as RDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A DB instance.
    Instance {
        /// `DBInstanceIdentifier`.
        id: String,
        /// `DBInstanceArn`.
        arn: Option<String>,
        /// `Endpoint.Address`.
        endpoint: String,
        /// `Endpoint.Port`.
        port: Option<u16>,
        /// The Aurora cluster it belongs to, if any.
        cluster: Option<String>,
    },
    /// An Aurora DB cluster, whose master acts on the writer endpoint.
    Cluster {
        /// `DBClusterIdentifier`.
        id: String,
        /// `Endpoint`: the writer.
        writer: String,
        /// `ReaderEndpoint`.
        reader: Option<String>,
        /// `Port`, of both endpoints.
        port: Option<u16>,
    },
}

impl Database {
    /// The endpoint the master connects to.
    pub fn endpoint(&self) -> &str {
        match self {
            Database::Instance { endpoint, .. } => endpoint,
            Database::Cluster { writer, .. } => writer,
        }
    }

    /// The port RDS serves the database's endpoints at.
    pub fn port(&self) -> Option<u16> {
        match self {
            Database::Instance { port, .. } | Database::Cluster { port, .. } => *port,
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Instance { id, .. } => write!(f, "DB instance {id}"),
            Database::Cluster { id, .. } => write!(f, "DB cluster {id}"),
        }
    }
}

/// How a host relates to a master's database, when RDS proves that it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The database's own endpoint (as a DNS name: case or a trailing dot aside).
    SameEndpoint,
    /// A read replica of the master's instance.
    ReadReplica,
    /// The reader endpoint of the master's cluster.
    ClusterReader,
    /// An instance of the master's cluster.
    ClusterInstance,
}

impl Relation {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::SameEndpoint => "same endpoint",
            Relation::ReadReplica => "read replica",
            Relation::ClusterReader => "cluster reader endpoint",
            Relation::ClusterInstance => "cluster instance",
        }
    }
}

/// Where an RDS-managed master secret's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedMaster {
    /// The instance or cluster the secret's tag names.
    pub database: Database,
    /// Its engine and endpoint, where the master connects.
    pub endpoint: Endpoint,
}

/// The RDS lookups of the alternating-users path, over `api`, with what the container has
/// learnt of RDS-managed master secrets.
pub struct Rds<A> {
    api: A,
    /// Master secret id → its database.
    masters: Mutex<HashMap<String, ManagedMaster>>,
}

impl<A: fmt::Debug> fmt::Debug for Rds<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rds")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<A: RdsApi> Rds<A> {
    /// The lookups over `api`, remembering nothing yet.
    pub fn new(api: A) -> Self {
        Rds {
            api,
            masters: Mutex::new(HashMap::new()),
        }
    }

    /// The API the lookups use.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// Where the master secret `masterarn`, which has no `host`, is served, when RDS manages it:
    /// from memory, or from its tag ([`INSTANCE_TAG`], [`CLUSTER_TAG`]; `DescribeSecret`) and the
    /// instance or cluster it names, which must name this very secret as its `MasterUserSecret`.
    /// `Ok(None)` when the secret has no such tag: it is no RDS-managed secret.
    pub async fn managed_master<S: SecretStore>(
        &self,
        store: &S,
        masterarn: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Option<ManagedMaster>, Error> {
        if let Some(known) = self.remembered(masterarn) {
            return Ok(Some(known));
        }
        let description = store.describe(masterarn, ctx).await?;
        let Some((tag, db_arn)) = rds_tag(&description) else {
            return Ok(None);
        };
        let invalid = |problem: String| Error::invalid_secret(masterarn, Stage::Current, problem);
        let bound = |master_secret: Option<&str>| {
            master_secret.is_some_and(|s| Some(s) == description.arn.as_deref())
        };
        let master = if tag == INSTANCE_TAG {
            let Some(instance) = self.api.instance(db_arn, ctx).await? else {
                return Err(invalid(gone(tag, "DB instance", db_arn)));
            };
            if !bound(instance.master_secret.as_deref()) {
                return Err(invalid(unbound("DB instance", &instance.identifier)));
            }
            located_instance(instance).map_err(invalid)?
        } else {
            let Some(cluster) = self.api.cluster(db_arn, ctx).await? else {
                return Err(invalid(gone(tag, "DB cluster", db_arn)));
            };
            if !bound(cluster.master_secret.as_deref()) {
                return Err(invalid(unbound("DB cluster", &cluster.identifier)));
            }
            located_cluster(cluster).map_err(invalid)?
        };
        info!(
            master = %master.database,
            endpoint = master.endpoint.host,
            port = master.endpoint.port,
            "RDS-managed master secret located"
        );
        self.remember(masterarn, &master);
        Ok(Some(master))
    }

    /// Forgets where `masterarn`'s database is (its master did not log in, or no longer relates
    /// to the rotated host): the next rotation asks RDS again.
    pub fn forget(&self, masterarn: &str) {
        self.lock().remove(masterarn);
    }

    /// The RDS database whose endpoint is `host` at `port` (an instance, or a cluster's writer
    /// endpoint), or `None`.
    pub async fn database_at(
        &self,
        host: &str,
        port: u16,
        ctx: &StepContext<'_>,
    ) -> Result<Option<Database>, Error> {
        let Some(shape) = rds_shape(host) else {
            return Ok(None);
        };
        if shape.cluster {
            let cluster = self.api.cluster(shape.identifier, ctx).await?;
            Ok(cluster.and_then(|c| match c.writer {
                Some(writer) if same_host(host, &writer) && c.port == Some(port) => {
                    Some(Database::Cluster {
                        id: c.identifier,
                        writer,
                        reader: c.reader,
                        port: c.port,
                    })
                }
                _ => None,
            }))
        } else {
            let instance = self.api.instance(shape.identifier, ctx).await?;
            Ok(instance
                .filter(|i| serves(i, host, port))
                .and_then(|i| database_of(i).ok()))
        }
    }

    /// How `host` at `port` relates to `master`, when RDS proves it: `master`'s own endpoint; an
    /// instance whose endpoint is `host` and which is a read replica of `master` (an instance)
    /// or a member of `master`'s cluster; or `master`'s reader endpoint; each at the port RDS
    /// gives it. `None` for anything else.
    pub async fn relation(
        &self,
        host: &str,
        port: u16,
        master: &Database,
        ctx: &StepContext<'_>,
    ) -> Result<Option<Relation>, Error> {
        let at_port = master.port() == Some(port);
        if same_host(host, master.endpoint()) {
            return Ok(at_port.then_some(Relation::SameEndpoint));
        }
        if let Database::Cluster {
            reader: Some(reader),
            ..
        } = master
        {
            if same_host(host, reader) {
                return Ok(at_port.then_some(Relation::ClusterReader));
            }
        }
        let Some(shape) = rds_shape(host).filter(|s| !s.cluster) else {
            return Ok(None);
        };
        let Some(instance) = self.api.instance(shape.identifier, ctx).await? else {
            return Ok(None);
        };
        if !serves(&instance, host, port) {
            return Ok(None);
        }
        Ok(member_of(&instance, master))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ManagedMaster>> {
        self.masters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remembered(&self, masterarn: &str) -> Option<ManagedMaster> {
        self.lock().get(masterarn).cloned()
    }

    fn remember(&self, masterarn: &str, master: &ManagedMaster) {
        let mut masters = self.lock();
        if masters.len() >= REMEMBERED {
            masters.clear();
        }
        masters.insert(masterarn.to_owned(), master.clone());
    }
}

/// The RDS tag of a master secret and the ARN it names. Tag keys are matched ignoring ASCII case,
/// as AWS's functions match them; the `aws:` prefix is reserved to AWS.
fn rds_tag(description: &SecretDescription) -> Option<(&'static str, &str)> {
    description.tags.iter().find_map(|(key, value)| {
        [INSTANCE_TAG, CLUSTER_TAG]
            .into_iter()
            .find(|tag| key.eq_ignore_ascii_case(tag))
            .map(|tag| (tag, value.as_str()))
    })
}

/// Whether `instance`'s endpoint is `host` (as a DNS name) at `port`.
fn serves(instance: &DbInstance, host: &str, port: u16) -> bool {
    instance
        .address
        .as_deref()
        .is_some_and(|address| same_host(host, address))
        && instance.port == Some(port)
}

/// The relation of `instance` (whose endpoint is the host in question) to `master`.
fn member_of(instance: &DbInstance, master: &Database) -> Option<Relation> {
    let same = |a: Option<&str>, b: &str| a.is_some_and(|a| a.eq_ignore_ascii_case(b));
    match master {
        Database::Instance {
            id, arn, cluster, ..
        } => {
            let source = instance.replica_source.as_deref();
            if same(source, id) || arn.as_deref().is_some_and(|arn| same(source, arn)) {
                Some(Relation::ReadReplica)
            } else if cluster
                .as_deref()
                .is_some_and(|c| same(instance.cluster.as_deref(), c))
            {
                Some(Relation::ClusterInstance)
            } else {
                None
            }
        }
        Database::Cluster { id, .. } => {
            same(instance.cluster.as_deref(), id).then_some(Relation::ClusterInstance)
        }
    }
}

fn gone(tag: &str, kind: &str, arn: &str) -> String {
    format!(
        "tag {tag} names {kind} {arn}, which RDS does not know (deleted or renamed); \
         an RDS-managed master secret serves only its own database"
    )
}

fn unbound(kind: &str, id: &str) -> String {
    format!(
        "{kind} {id}, which the secret's RDS tag names, does not keep its master user password \
         in this secret (MasterUserSecret)"
    )
}

/// An instance as a [`Database`], once it has an endpoint.
fn database_of(instance: DbInstance) -> Result<Database, String> {
    let DbInstance {
        identifier,
        arn,
        address,
        port,
        cluster,
        ..
    } = instance;
    match address {
        Some(endpoint) => Ok(Database::Instance {
            id: identifier,
            arn,
            endpoint,
            port,
            cluster,
        }),
        None => Err(format!("DB instance {identifier} has no endpoint yet")),
    }
}

fn located_instance(instance: DbInstance) -> Result<ManagedMaster, String> {
    let engine = rds_engine(
        "DB instance",
        &instance.identifier,
        instance.engine.as_deref(),
    )?;
    let port = instance.port.unwrap_or_else(|| engine.default_port());
    let mut database = database_of(instance)?;
    if let Database::Instance { port: known, .. } = &mut database {
        *known = Some(port);
    }
    let host = database.endpoint().to_owned();
    Ok(ManagedMaster {
        database,
        endpoint: Endpoint { engine, host, port },
    })
}

fn located_cluster(cluster: DbCluster) -> Result<ManagedMaster, String> {
    let engine = rds_engine("DB cluster", &cluster.identifier, cluster.engine.as_deref())?;
    let port = cluster.port.unwrap_or_else(|| engine.default_port());
    let Some(writer) = cluster.writer else {
        return Err(format!(
            "DB cluster {} has no writer endpoint yet",
            cluster.identifier
        ));
    };
    Ok(ManagedMaster {
        endpoint: Endpoint {
            engine,
            host: writer.clone(),
            port,
        },
        database: Database::Cluster {
            id: cluster.identifier,
            writer,
            reader: cluster.reader,
            port: Some(port),
        },
    })
}

/// The engine RDS runs, when this function rotates it.
fn rds_engine(kind: &str, id: &str, engine: Option<&str>) -> Result<Engine, String> {
    let engine = engine.unwrap_or_default();
    Engine::parse(engine).ok_or_else(|| {
        format!(
            "{kind} {id} runs engine `{engine}`, which is not one of {}",
            Engine::ACCEPTED
        )
    })
}
