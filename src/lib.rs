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
//!   [`protocol::Strategy`]; and [`engine`]: [`engine::Engine`], [`engine::Family`], user-name
//!   limits and the clone name. Leaves: they import nothing of this crate.
//! - [`error`]: the error type and its stable Lambda `errorType` names.
//! - [`deadline`]: the invocation's time budget and the context a step acts in.
//! - [`env`](mod@env): the environment, read once by one set of rules.
//! - [`tls`]: trust roots (system, Amazon RDS, `TLS_EXTRA_CA_FILE`).
//! - [`credentials`]: the secret JSON ([`credentials::DbSecret`], unknown keys kept) and
//!   [`credentials::Password`].
//! - [`password`]: password generation from the `PASSWORD_LENGTH`/`EXCLUDE_*` policy.
//! - [`metrics`]: one CloudWatch Embedded Metric Format line per invocation.
//! - [`config`]: the environment turned into a validated [`config::Config`].
//! - [`logging`]: log set-up honouring Lambda's logging controls, with a filter layer that keeps
//!   raw events, SDK bodies and driver statements out whatever they ask for.
//! - [`event`]: the rotation event, validated before any API call.
//! - [`secrets`]: the [`secrets::SecretStore`] trait (and [`secrets::SecretInventory`], an
//!   audit's reads) and their AWS SDK implementation, whose deadline-bounded retries serve every
//!   AWS call.
//! - [`rds`]: the RDS lookups of the alternating-users path: where an RDS-managed master
//!   secret's database is, and whether a host is a read replica or Aurora reader of the master's.
//! - [`rotators`]: the [`rotators::Rotator`] trait, [`rotators::Rotators`] dispatching on the
//!   secret's engine, the driver glue every engine shares, and one folder per engine family
//!   (`rotators/postgres/`, `rotators/mysql/`: session, SQL, alternating-users path and its
//!   privilege invariant, dual-password path; `rotators/redis/`: session, ACL rules, saving a
//!   change), and [`rotators::CloneAudit`], the privilege invariant checked read-only.
//! - [`handler`]: the guard and the four steps, generic over a secret store, a rotator and the
//!   RDS API; the dual-password path in `handler/dual.rs`.
//! - [`doctor`]: the operator's tool, `db-secret-rotator doctor`: an audit of rotation health
//!   across secrets and a safe repair of a stuck `AWSPENDING`, from the command line or as the
//!   function's scheduled audit. Beside the handler, over the same secret store and rotators.
//!
//! # Adding an engine
//!
//! A new engine is a folder under `rotators/` and an enum variant. Add its `engine` name to
//! [`engine::Engine`] (and, when it speaks a new protocol, a variant of [`engine::Family`], whose
//! exhaustive matches in `engine.rs` then ask for its default port, excluded password characters,
//! user-name limit and the strategies it serves). Write `rotators/<family>/` with a session type
//! and a rotator implementing [`rotators::Rotator`], using the shared glue for TLS choice, bounded
//! calls and error text. Then give [`rotators::Session`] and [`rotators::Rotators`] one arm each
//! for it. No other module names an engine: the handler, the secret store and the configuration
//! stay as they are.
//!
//! # Testing
//!
//! Unit tests run beside the code: the protocol against in-memory fakes (`handler/tests.rs`),
//! parsers with property tests, SQL building against fixed inputs. The integration tests
//! (`tests/it`, one binary) run against the local stack: `scripts/stack.sh up` starts a Secrets
//! Manager emulator and real PostgreSQL, MariaDB and Redis servers (password authentication, TLS),
//! and `scripts/stack.sh env` prints the variables the tests read, once, in `tests/it/support`. A
//! missing stack skips them, except under `CI=true`, where it fails the run. `scripts/test.sh`
//! does all of it. The emulator serves RDS too; its synthetic endpoint names reach the local
//! servers through a rotator wrapper that exists only in the tests (`tests/it/support/rds.rs`).

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
pub mod rotators;
pub mod secrets;
pub mod tls;

pub use config::Config;
pub use error::Error;
