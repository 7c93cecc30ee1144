//! db-secret-rotator: an AWS Lambda that rotates database credentials stored in AWS Secrets Manager.
//!
//! Secrets Manager invokes the function four times per rotation. `createSecret` stores a new
//! credential as `AWSPENDING` under the request token; `setSecret` makes the database accept it;
//! `testSecret` logs in with it; `finishSecret` moves `AWSCURRENT` to it. Every step is idempotent,
//! and whatever fails, the `AWSCURRENT` credential keeps working.
//!
//! # Layout
//!
//! From the bottom up; a module imports only modules listed above it.
//!
//! - [`protocol`]: the protocol's vocabulary, [`protocol::Step`], [`protocol::Stage`],
//!   [`protocol::Strategy`]. A leaf: it imports nothing of this crate.
//! - [`engine`]: [`engine::Engine`], [`engine::Family`], user-name limits, the clone name, and
//!   the one capability table, [`engine::Engine::support`]: which [`engine::Method`] carries out
//!   a strategy on an engine, or the sentence that refuses it.
//! - [`error`]: the error type and its stable Lambda `errorType` names, and
//!   [`error::Shortfall`], what a preflight finds.
//! - [`deadline`]: the invocation's time budget and the context a step acts in.
//! - [`env`](mod@env): the environment, read once by one set of rules.
//! - [`tls`]: trust roots (system, Amazon RDS, `TLS_EXTRA_CA_FILE`).
//! - [`credentials`]: the secret JSON ([`credentials::DbSecret`], unknown keys kept), the
//!   connection-side [`credentials::Login`] built from it, and [`credentials::Password`].
//! - [`password`]: password generation from the `PASSWORD_LENGTH`/`EXCLUDE_*` policy.
//! - [`metrics`]: one CloudWatch Embedded Metric Format line per invocation.
//! - [`config`]: the environment turned into a validated [`config::Config`].
//! - [`logging`]: log set-up honouring Lambda's logging controls, with a filter layer that keeps
//!   raw events, SDK bodies and driver statements out whatever they ask for.
//! - [`event`]: the rotation event, validated before any API call.
//! - [`aws`]: the deadline-bounded, retried call that every AWS client goes through.
//! - [`secrets`]: the [`secrets::SecretStore`] trait (and [`secrets::SecretInventory`], an
//!   audit's reads) and their AWS SDK implementation.
//! - [`rds`]: the RDS lookups behind masters: where an RDS-managed master secret's database is,
//!   and whether a host is a read replica or Aurora reader of the master's.
//! - [`cache_user`]: ElastiCache and MemoryDB users through their APIs: the secret's shape, the
//!   [`cache_user::CacheUserApi`] and its SDK clients (built on first use, each behind a cargo
//!   feature), waiting for `active` within the deadline, setting the password list, the
//!   preflight's findings.
//! - [`rotators`]: the database side, as roles. [`rotators::Connect`] opens a
//!   [`rotators::Session`] (check, account, close); a session plays the roles its engine
//!   serves: [`rotators::OwnPassword`], [`rotators::CloneManagement`], [`rotators::DualOwn`],
//!   [`rotators::DualMaster`], each with the read-only check of what it needs. One folder per
//!   engine family (`rotators/postgres/`, `rotators/mysql/`, `rotators/redis/`), the driver glue
//!   they share, and [`rotators::Engines`], the connector that picks the family by the login's
//!   engine and refuses a role its engine does not play by asking the capability table; it also
//!   carries the cache-user APIs ([`rotators::UserApis`]).
//! - [`app`]: [`app::App`], what lives as long as the container: configuration, the secret
//!   store, the connectors, RDS, and the memories of secrets seen and versions written.
//! - [`rotation`]: the rotation's domain, which the three faces below share: the guard, the
//!   [`rotation::Plan`] decided once per secret, the master resolved with its RDS proof, the
//!   four steps with one file per strategy (and the cache users' own, `rotation/cache_user.rs`),
//!   and the [`rotation::Preflight`].
//! - [`handler`]: the Lambda adapter: event, span, the step, the metrics line.
//! - [`doctor`]: the operator's tool, `db-secret-rotator doctor`: an audit of rotation health
//!   across secrets and a safe repair of a stuck `AWSPENDING`, from the command line or as the
//!   function's scheduled audit, on the same domain, so it never disagrees with the function.
//!
//! # Adding an engine
//!
//! A new engine is a folder under `rotators/` and an enum variant. Add its `engine` name to
//! [`engine::Engine`] (and, when it speaks a new protocol, a variant of [`engine::Family`], whose
//! exhaustive matches in `engine.rs` then ask for its default port, excluded password characters,
//! user-name limit and, in [`engine::Engine::support`], the method of each strategy it serves).
//! Write `rotators/<family>/` with a connector implementing [`rotators::Connect`] and a session
//! implementing [`rotators::Session`] and exactly the roles its methods need, using the shared
//! glue for TLS choice, bounded calls and error text. Then give [`rotators::Engines`] and
//! [`rotators::AnySession`] one arm each for it. No other module names an engine: the
//! rotation, the doctor, the secret store and the configuration stay as they are.
//!
//! # Adding a strategy
//!
//! A strategy is a [`protocol::Strategy`] value, the [`engine::Method`]s that carry it out, and
//! a file under `rotation/`. Name it in [`protocol::Strategy`] (the `ROTATION_STRATEGY` and
//! `rotation_strategy` spelling); say in [`engine::Engine::support`] which method serves it on
//! each engine, or why not. A method that changes passwords differently from the existing ones is
//! a new role trait in `rotators/mod.rs`, with its change and its read-only check, implemented by
//! the engines that serve it and dispatched by [`rotators::AnySession`] (which refuses it on the
//! others through the table). Then `rotation/<strategy>.rs` holds its setSecret, the plan's
//! match in `rotation/steps.rs` calls it, and `rotation/preflight.rs` asks the role's check.
//! createSecret, testSecret, finishSecret, the guard, the handler and the doctor need nothing
//! new: they follow the plan.
//!
//! # Testing
//!
//! Unit tests run beside the code: the protocol against in-memory fakes of Secrets Manager and of
//! a database (`secrets/fake.rs`, `rotators/fake.rs`; `handler/tests.rs`, `doctor/tests.rs`),
//! parsers with property tests, SQL building against fixed inputs. The integration tests
//! (`tests/it`, one binary) run against the local stack: `scripts/stack.sh up` starts a Secrets
//! Manager emulator and real PostgreSQL, MariaDB and Redis servers (password authentication, TLS),
//! and `scripts/stack.sh env` prints the variables the tests read, once, in the test kit
//! (`crates/testkit`, which `tests/it/support` re-exports). A
//! missing stack skips them, except under `CI=true`, where it fails the run. `scripts/test.sh`
//! does all of it. The emulator serves RDS too; its synthetic endpoint names reach the local
//! servers through a rotator wrapper that exists only in the tests (`crates/testkit/src/rds.rs`).

pub mod app;
#[cfg(test)]
mod arbitrary;
pub mod aws;
pub mod cache_user;
pub mod config;
pub mod credentials;
pub mod deadline;
pub mod doctor;
pub mod engine;
pub mod env;
pub mod error;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod password;
pub mod protocol;
pub mod rds;
pub mod rotation;
pub mod rotators;
pub mod secrets;
pub mod tls;

pub use config::Config;
pub use error::Error;
