//! RDS as the tests see it: the emulator's RDS (instances and Aurora clusters whose master
//! password RDS manages, read replicas), the function's RDS lookups pointed at it (or at a counting proxy),
//! and [`Redirect`], which makes the emulator's synthetic endpoint names reach the stack's
//! servers.
//!
//! # Why a redirecting rotator
//!
//! The emulator names every endpoint `<id>.aaaaaaaaaa.<region>.rds.amazonaws.com`, which resolves
//! nowhere. Rather than touch the machine's resolver (`/etc/hosts`, a DNS server), the tests wrap
//! the real rotators in [`Redirect`]: the handler is generic over its rotator, so the wrapper
//! exists only in this test crate. It sends a connection for a known endpoint name to the stack's
//! server instead, keeping everything else of the credential, and verifies TLS for the name the
//! secret asks for (`tls_server_name`), else for `localhost`, which the test certificate carries
//! as an RDS certificate carries its endpoint's name: an RDS-managed master connects with
//! verified TLS and no `tls_server_name` of its own. It records how each attempt was to be
//! secured before the redirection. Nothing in the function can redirect a connection.

use std::cell::RefCell;
use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_rds::Client;
use db_secret_rotator::Error;
use db_secret_rotator::credentials::{DbSecret, Login, SslSetting};
use db_secret_rotator::deadline::StepContext;
use db_secret_rotator::protocol::Stage;
use db_secret_rotator::rds::{Rds, SdkRds};
use db_secret_rotator::rotators::{Connect, UserApis};
use serde_json::json;

use super::{Server, Stack, register_password, unique};

/// The password the emulator gives every master secret it creates.
const EMULATOR_MASTER_PASSWORD: &str = "P@55w0rd!";

/// The function's RDS lookups with `endpoint` as their RDS endpoint (the emulator, or a proxy in
/// front of it); the SDK's default endpoint when `None`.
pub async fn rds_at(endpoint: Option<&str>) -> Rds<SdkRds> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    Rds::new(SdkRds::new(&loader.load().await))
}

/// An RDS client for the emulator, to make fixtures.
pub async fn rds_client(stack: &Stack) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&stack.secrets_manager)
        .load()
        .await;
    Client::new(&config)
}

/// A DB instance of the emulator.
#[derive(Debug, Clone)]
pub struct RdsInstance {
    pub id: String,
    pub endpoint: String,
    pub port: u16,
    /// The secret in which RDS manages its master password, when it does.
    pub master_secret: Option<String>,
}

fn engine(server: Server) -> (&'static str, &'static str) {
    match server {
        Server::Postgres => ("postgres", "15.4"),
        Server::Mariadb => ("mariadb", "10.11.6"),
    }
}

fn described(i: &aws_sdk_rds::types::DbInstance) -> RdsInstance {
    let endpoint = i.endpoint().expect("endpoint");
    RdsInstance {
        id: i.db_instance_identifier().unwrap().to_owned(),
        endpoint: endpoint.address().unwrap().to_owned(),
        port: u16::try_from(endpoint.port().unwrap()).unwrap(),
        master_secret: i
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_owned),
    }
}

/// Creates an instance running `server`'s engine. With `managed`, RDS manages its master
/// password in a secret tagged with the instance's ARN, which then holds the stack's admin
/// credentials.
pub async fn create_instance(stack: &Stack, server: Server, managed: bool) -> RdsInstance {
    let client = rds_client(stack).await;
    let (engine, version) = engine(server);
    let out = client
        .create_db_instance()
        .db_instance_identifier(unique("dsr-db").replace('_', "-"))
        .db_instance_class("db.t3.micro")
        .engine(engine)
        .engine_version(version)
        .allocated_storage(20)
        .master_username("admin")
        .manage_master_user_password(managed)
        .send()
        .await
        .expect("CreateDBInstance");
    let instance = described(out.db_instance().expect("instance"));
    if let Some(secret) = &instance.master_secret {
        hold_admin_credentials(stack, server, secret).await;
    }
    instance
}

/// Sets the value of `secret`, a master secret the emulator created, to the stack's admin
/// credentials for `server` (the emulator's own are a fixed pair no server knows), still holding
/// only `username` and `password`.
async fn hold_admin_credentials(stack: &Stack, server: Server, secret: &str) {
    register_password(EMULATOR_MASTER_PASSWORD);
    let admin = stack.master_secret(server);
    let value = json!({"username": admin["username"], "password": admin["password"]});
    super::sm_client()
        .await
        .put_secret_value()
        .secret_id(secret)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("PutSecretValue on the master secret");
}

/// An Aurora PostgreSQL cluster of the emulator, whose master password RDS manages, with one
/// instance.
#[derive(Debug, Clone)]
pub struct RdsCluster {
    pub writer: String,
    pub reader: String,
    pub master_secret: String,
    /// The cluster's one instance.
    pub member: RdsInstance,
}

/// Creates an `aurora-postgresql` cluster whose master secret holds the stack's PostgreSQL admin
/// credentials, and one instance in it.
pub async fn create_cluster(stack: &Stack) -> RdsCluster {
    let client = rds_client(stack).await;
    let id = unique("dsr-cluster").replace('_', "-");
    let out = client
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("admin")
        .manage_master_user_password(true)
        .send()
        .await
        .expect("CreateDBCluster");
    let cluster = out.db_cluster().expect("cluster");
    let master_secret = cluster
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .expect("MasterUserSecret")
        .to_owned();
    hold_admin_credentials(stack, Server::Postgres, &master_secret).await;
    let member = client
        .create_db_instance()
        .db_instance_identifier(format!("{id}-1"))
        .db_cluster_identifier(&id)
        .db_instance_class("db.r6g.large")
        .engine("aurora-postgresql")
        .send()
        .await
        .expect("CreateDBInstance in the cluster");
    RdsCluster {
        writer: cluster.endpoint().expect("writer endpoint").to_owned(),
        reader: cluster
            .reader_endpoint()
            .expect("reader endpoint")
            .to_owned(),
        master_secret,
        member: described(member.db_instance().expect("member")),
    }
}

/// Creates a read replica of `source`.
pub async fn create_replica(stack: &Stack, source: &RdsInstance) -> RdsInstance {
    let out = rds_client(stack)
        .await
        .create_db_instance_read_replica()
        .db_instance_identifier(unique("dsr-replica").replace('_', "-"))
        .source_db_instance_identifier(&source.id)
        .send()
        .await
        .expect("CreateDBInstanceReadReplica");
    described(out.db_instance().expect("replica"))
}

/// Renames `instance`: its old identifier (and ARN) no longer exist.
pub async fn rename_instance(stack: &Stack, instance: &RdsInstance) {
    rds_client(stack)
        .await
        .modify_db_instance()
        .db_instance_identifier(&instance.id)
        .new_db_instance_identifier(format!("{}-renamed", instance.id))
        .apply_immediately(true)
        .send()
        .await
        .expect("ModifyDBInstance");
}

/// One connection attempt as the function made it, before any redirection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What the attempt was called (`login with master secret`).
    pub name: String,
    pub host: String,
    pub ssl: SslSetting,
    pub tls_server_name: Option<String>,
}

/// A rotator that sends connections for known endpoint names to other addresses, recording
/// every connection attempt.
pub struct Redirect<R> {
    inner: R,
    routes: HashMap<String, (String, u16)>,
    pub attempts: RefCell<Vec<Attempt>>,
}

impl<R> Redirect<R> {
    pub fn new(inner: R) -> Self {
        Redirect {
            inner,
            routes: HashMap::new(),
            attempts: RefCell::new(Vec::new()),
        }
    }

    /// Connections to `endpoint` (any port) go to `server` on the stack.
    pub fn route(mut self, endpoint: &str, stack: &Stack, server: Server) -> Self {
        self.routes
            .insert(endpoint.to_ascii_lowercase(), server.address(stack));
        self
    }

    /// The hosts of the attempts named `attempt`.
    pub fn hosts_of(&self, attempt: &str) -> Vec<String> {
        self.attempts_named(attempt)
            .into_iter()
            .map(|a| a.host)
            .collect()
    }

    /// The attempts named `attempt`.
    pub fn attempts_named(&self, attempt: &str) -> Vec<Attempt> {
        self.attempts
            .borrow()
            .iter()
            .filter(|a| a.name == attempt)
            .cloned()
            .collect()
    }

    /// `login` at `host:port`, TLS still verifying the name the secret asks for.
    fn redirected(login: &Login, host: &str, port: u16) -> Login {
        let mut value = json!({
            "engine": login.engine().to_string(),
            "host": host,
            "port": port,
            "username": login.username(),
            "password": login.password().expose(),
            "dbname": login.dbname(),
            "tls_server_name": login.tls_server_name().unwrap_or("localhost"),
        });
        let fields = value.as_object_mut().unwrap();
        match login.ssl() {
            SslSetting::Require => drop(fields.insert("ssl".into(), json!(true))),
            SslSetting::Disable => drop(fields.insert("ssl".into(), json!(false))),
            SslSetting::Unset | SslSetting::Unrecognised => {}
        }
        DbSecret::parse("redirected", Stage::Current, &value.to_string())
            .unwrap()
            .login()
    }
}

impl<R: UserApis> UserApis for Redirect<R> {
    type Api = R::Api;

    fn user_api(&self) -> &R::Api {
        self.inner.user_api()
    }
}

impl<R: Connect> Connect for Redirect<R> {
    type Session = R::Session;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<R::Session, Error> {
        self.attempts.borrow_mut().push(Attempt {
            name: attempt.to_owned(),
            host: login.host().to_owned(),
            ssl: login.ssl(),
            tls_server_name: login.tls_server_name().map(str::to_owned),
        });
        let route = self.routes.get(&login.host().to_ascii_lowercase());
        match route {
            Some((host, port)) => {
                let login = Self::redirected(login, host, *port);
                self.inner.connect(&login, attempt, ctx).await
            }
            None => self.inner.connect(login, attempt, ctx).await,
        }
    }
}
