//! The container's state: configuration, clients and memories, built once and borrowed by every
//! invocation, whether it is a rotation step, the scheduled audit or the operator's command line.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::config::Config;
use crate::metrics::SecretKinds;
use crate::rds::Rds;

/// What lives as long as the container (or the command line's run).
#[derive(Debug)]
pub struct App<S, R, A> {
    /// The validated environment.
    pub config: Config,
    /// Secrets Manager.
    pub store: S,
    /// The database connectors.
    pub rotators: R,
    /// The RDS lookups, and where RDS-managed master secrets are served.
    pub rds: Rds<A>,
    /// Engine and strategy of the secrets seen, for metrics.
    pub kinds: SecretKinds,
    /// The pending versions this container wrote.
    pub written: Written,
}

impl<S, R, A> App<S, R, A> {
    /// The state over these clients, with empty memories.
    pub fn new(config: Config, store: S, rotators: R, rds: Rds<A>) -> Self {
        App {
            config,
            store,
            rotators,
            rds,
            kinds: SecretKinds::new(SecretKinds::DEFAULT_CAPACITY),
            written: Written::default(),
        }
    }
}

/// The pending versions (secret and token) that this container's createSecret wrote or found,
/// the most recent [`Written::CAPACITY`]. testSecret asks it whether its version is a rotation's
/// (the common case, where the four steps run in one warm container) before it reads
/// `AWSCURRENT` to tell a configuration test (docs/protocol.md 5.15); forgetting costs one read,
/// never a wrong answer.
#[derive(Debug, Default)]
pub struct Written {
    versions: Mutex<VecDeque<(String, String)>>,
}

impl Written {
    /// Versions kept.
    pub const CAPACITY: usize = 256;

    /// Notes that `token` of `secret_id` holds a rotation's new credential.
    pub fn note(&self, secret_id: &str, token: &str) {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        if versions.iter().any(|(s, t)| s == secret_id && t == token) {
            return;
        }
        if versions.len() >= Self::CAPACITY {
            versions.pop_front();
        }
        versions.push_back((secret_id.to_owned(), token.to_owned()));
    }

    /// Whether `token` of `secret_id` was noted.
    pub fn contains(&self, secret_id: &str, token: &str) -> bool {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(s, t)| s == secret_id && t == token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_versions_are_bounded() {
        let written = Written::default();
        written.note("a", "t0");
        written.note("a", "t0");
        assert!(written.contains("a", "t0") && !written.contains("b", "t0"));
        for i in 1..=Written::CAPACITY {
            written.note("a", &format!("t{i}"));
        }
        assert!(!written.contains("a", "t0"), "the oldest is forgotten");
        assert!(written.contains("a", &format!("t{}", Written::CAPACITY)));
    }
}
