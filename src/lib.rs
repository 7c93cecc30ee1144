//! db-secret-rotator: an AWS Lambda that rotates database credentials stored in AWS Secrets Manager.
//!
//! Secrets Manager invokes the function four times per rotation. `createSecret` stores a new
//! credential as `AWSPENDING` under the request token; `setSecret` makes the database accept it;
//! `testSecret` logs in with it; `finishSecret` moves `AWSCURRENT` to it. Every step is idempotent,
//! and whatever fails, the `AWSCURRENT` credential keeps working.
//!
//! # Layout
//!
//! - [`event`]: the rotation event, validated before any API call.
//! - [`handler`]: the guard and the four steps, generic over a secret store and a rotator.
//! - [`secrets`]: the [`secrets::SecretStore`] trait and its AWS SDK implementation.
//! - [`credentials`]: the secret JSON ([`credentials::DbSecret`], unknown keys kept) and
//!   [`credentials::Password`].
//! - [`password`]: password generation from the `PASSWORD_LENGTH`/`EXCLUDE_*` policy.
//! - [`rotators`]: engines, the [`rotators::Rotator`] trait, the deadline, and one module per
//!   database family.
//! - [`tls`]: trust roots (system, Amazon RDS, `TLS_EXTRA_CA_FILE`).
//! - [`logging`]: log set-up honouring Lambda's logging controls, raw events never logged.
//! - [`metrics`]: one CloudWatch Embedded Metric Format line per invocation.
//! - [`config`]: environment variables turned into a validated [`config::Config`].
//! - [`error`]: the error type and its stable Lambda `errorType` names.
//!
//! # Testing
//!
//! Unit tests run the protocol against in-memory fakes. The integration tests (`tests/it`) need the
//! local stack: `scripts/stack.sh up` starts a Secrets Manager emulator and real database servers and
//! `scripts/stack.sh env` prints the variables the tests read. `scripts/test.sh` does all of it.

#[cfg(test)]
mod arbitrary;
pub mod config;
pub mod credentials;
pub mod error;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod password;
pub mod rotators;
pub mod secrets;
pub mod tls;

pub use config::Config;
pub use error::Error;
