//! PostgreSQL and Aurora PostgreSQL (docs/protocol.md 5.6 and 5.8), over `tokio-postgres`.
//!
//! Passwords are sent as client-computed SCRAM-SHA-256 verifiers, so the plaintext never reaches the
//! server's logs or `pg_stat_activity`. `ALTER ROLE` is a utility statement and cannot take bound
//! parameters: the role name and the verifier are escaped client-side.
//!
//! # Layout
//!
//! - `session`: opening a session (sealed), what is kept of a driver error;
//! - `cleartext`: a plaintext stream that never answers a cleartext or MD5 password request;
//! - `master`: the alternating-users path, as named steps;
//! - `invariant`: the privilege invariant of that path, from the catalogs;
//! - `preflight`: what the master may do, from the catalogs, before it does anything.

mod cleartext;
mod invariant;
mod master;
mod preflight;
mod session;

use std::sync::{Arc, OnceLock};

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use session::PgSession;

use super::driver::{
    CLOSE_TIMEOUT, MAY_HAVE_APPLIED, Transport, bounded, connect_per_tls_choice, database_error,
    may_use_tls,
};
use super::{Account, CloneManagement, Connect, OwnPassword, Session};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{CloneFindings, Error, Shortfall};
use crate::tls::LazyRoots;
use session::{describe, statement_code};

/// The PostgreSQL connector: TLS configuration shared by every connection.
#[derive(Clone)]
pub(crate) struct PostgresRotator {
    roots: LazyRoots,
    /// Built on the first verified-TLS login over the container's one rustls configuration; each
    /// connection clones it (an `Arc`), never the configuration.
    tls: Arc<OnceLock<MakeRustlsConnect>>,
    transport: Transport,
}

impl std::fmt::Debug for PostgresRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRotator")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl PostgresRotator {
    /// A connector verifying servers with `roots`' configuration, falling back and sending
    /// passwords as `transport` allows.
    pub(crate) fn new(roots: LazyRoots, transport: Transport) -> Self {
        PostgresRotator {
            roots,
            tls: Arc::new(OnceLock::new()),
            transport,
        }
    }

    /// The TLS connector, made (and the trust roots loaded) on first use.
    fn tls(&self) -> &MakeRustlsConnect {
        self.tls
            .get_or_init(|| MakeRustlsConnect::new((*self.roots.get().client_config()).clone()))
    }
}

impl Connect for PostgresRotator {
    type Session = PgSession;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Error> {
        let tls = may_use_tls(self.transport.mode, login).then(|| self.tls());
        connect_per_tls_choice(self.transport.mode, login, ctx, |use_tls| {
            PgSession::open(
                tls.filter(|_| use_tls),
                login,
                self.transport.cleartext,
                attempt,
                ctx,
            )
        })
        .await
    }
}

impl Session for PgSession {
    fn engine(&self) -> Engine {
        self.engine
    }

    fn account(&self) -> Account {
        Account {
            user: self.user.clone(),
            host: None,
        }
    }

    async fn check(&mut self, ctx: &StepContext<'_>) -> Result<(), Error> {
        const TESTING: &str = "running the test query";
        let timeout = ctx.query_timeout("test query")?;
        let engine = self.engine;
        let query = async {
            self.client
                .simple_query("SELECT pg_catalog.now()")
                .await
                .map_err(|e| database_error(engine, TESTING, describe(&e)))
        };
        bounded(timeout, query, |timed_out| {
            database_error(engine, TESTING, timed_out)
        })
        .await
        .map(drop)
    }

    async fn close(self) {
        let PgSession {
            client,
            mut connection,
            ..
        } = self;
        drop(client);
        // Dropping the client sends Terminate; wait briefly so the server sees a clean close. A
        // connection still waiting for an answer (a statement that timed out) never finishes:
        // stop it rather than leave it running in the warm container.
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut connection)
            .await
            .is_err()
        {
            connection.abort();
        }
    }
}

impl OwnPassword for PgSession {
    async fn set_own_password(
        &mut self,
        login: &Login,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        const SETTING: &str = "setting the password";
        let timeout = ctx.query_timeout("ALTER ROLE")?;
        let verifier = postgres_protocol::password::scram_sha_256(new.expose().as_bytes());
        // Contains the verifier, not the password; still never logged.
        let statement = format!(
            "ALTER ROLE {} PASSWORD {}",
            escape_identifier(login.username()),
            escape_literal(&verifier)
        );
        let engine = self.engine;
        let change = async {
            self.client
                .batch_execute(&statement)
                .await
                .map_err(|e| database_error(engine, SETTING, statement_code(&e)))
        };
        bounded(timeout, change, |timed_out| {
            database_error(engine, SETTING, format!("{timed_out}; {MAY_HAVE_APPLIED}"))
        })
        .await
    }

    /// A role may always change its own password: nothing to find.
    async fn own_password_shortfalls(
        &mut self,
        _: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        Ok(Vec::new())
    }
}

impl CloneManagement for PgSession {
    /// As the master: see the `master` module for the steps. The current secret's password is
    /// not read: PostgreSQL gives the master no way to check a password, so the rotation proves
    /// the current secret on the master's server by logging in there (docs/protocol.md 5.12).
    async fn set_password_as_master(
        &mut self,
        account: &Account,
        _: &Login,
        pending: &Login,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        master::set_password_as_master(self, account, pending, ctx).await
    }

    async fn audit_clone(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        master::audit_clone(self, account, pending_user, ctx).await
    }

    async fn master_shortfalls(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        preflight::master_shortfalls(self, account, pending_user, ctx).await
    }
}

#[cfg(test)]
mod tests {
    /// The statements of this module that read catalogs, as written in its sources.
    fn queries() -> Vec<String> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("session.rs"),
            include_str!("master.rs"),
            include_str!("invariant.rs"),
            include_str!("preflight.rs"),
        ];
        let mut found = Vec::new();
        for source in sources {
            // Only the code: the tests below hold examples of what is refused.
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            let mut rest = code;
            while let Some(start) = rest.find('"') {
                let after = &rest[start + 1..];
                let mut literal = String::new();
                let mut chars = after.char_indices();
                let mut end = after.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        // A line continuation: the newline and the next line's indentation go.
                        '\\' => match chars.next() {
                            Some((_, '\n')) => {
                                let tail = &after[i + 2..];
                                let skipped = tail.len() - tail.trim_start().len();
                                for _ in 0..skipped {
                                    chars.next();
                                }
                            }
                            Some((_, escaped)) => literal.push(escaped),
                            None => {}
                        },
                        c => literal.push(c),
                    }
                }
                if literal.contains("SELECT") {
                    found.push(literal);
                }
                rest = &after[end.min(after.len())..];
            }
        }
        found
    }

    /// What in `sql` resolves through `search_path`: a function or type not qualified with
    /// `pg_catalog`, or an operator outside `OPERATOR(pg_catalog.…)`. String literals and
    /// keywords that take parentheses are not names.
    fn unqualified(sql: &str) -> Vec<String> {
        const KEYWORDS: [&str; 4] = ["EXISTS", "ANY", "ARRAY", "OPERATOR"];
        // Constructs that apply an operator found through the path.
        const IMPLICIT: [&str; 5] = ["IN", "LIKE", "ILIKE", "BETWEEN", "SIMILAR"];
        // Drop string literals and the qualified operators.
        let mut text = String::new();
        let mut in_string = false;
        for c in sql.chars() {
            match (c, in_string) {
                ('\'', _) => in_string = !in_string,
                (_, true) => {}
                (c, false) => text.push(c),
            }
        }
        let text = text
            .replace("OPERATOR(pg_catalog.=)", " ")
            .replace("OPERATOR(pg_catalog.<>)", " ");
        let mut problems: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|word| IMPLICIT.contains(word))
            .map(|word| format!("operator {word}"))
            .collect();
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let word_before = || {
                let mut j = i;
                while j > 0 && (chars[j - 1].is_alphanumeric() || "_.".contains(chars[j - 1])) {
                    j -= 1;
                }
                chars[j..i].iter().collect::<String>()
            };
            if c == '(' {
                let name = word_before();
                let alias = !name.contains('.') && name.len() <= 2;
                if !name.is_empty()
                    && !name.starts_with("pg_catalog.")
                    && !KEYWORDS.contains(&name.as_str())
                    && !IMPLICIT.contains(&name.as_str())
                    && !alias
                {
                    problems.push(format!("function {name}"));
                }
            }
            if "=<>|~!".contains(c) {
                problems.push(format!("operator {c}"));
            }
            if c == ':' && chars.get(i + 1) == Some(&':') {
                let cast: String = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || "_.".contains(**c))
                    .collect();
                if !cast.starts_with("pg_catalog.") {
                    problems.push(format!("type {cast}"));
                }
            }
        }
        problems
    }

    /// docs/protocol.md 5.14: nothing in a catalog query resolves through `search_path`, whatever
    /// it is, as a second line of defence behind the session's sealed path.
    #[test]
    fn every_catalog_query_is_qualified() {
        let queries = queries();
        assert!(queries.len() >= 8, "{} queries found", queries.len());
        for sql in queries {
            assert_eq!(unqualified(&sql), Vec::<String>::new(), "{sql}");
        }
    }

    #[test]
    fn the_check_finds_what_the_search_path_would_resolve() {
        assert_eq!(
            unqualified("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = $1"),
            ["function count", "operator ="]
        );
        assert_eq!(
            unqualified("SELECT x::text, unnest(s.c) AS c(setting) FROM t WHERE a IN (1)"),
            ["operator IN", "type text", "function unnest"]
        );
        assert!(
            unqualified(
                "SELECT pg_catalog.lower(s.c, '=') FROM pg_catalog.unnest(a) AS c(setting) \
                 WHERE x OPERATOR(pg_catalog.=) ANY (ARRAY[0::pg_catalog.oid])"
            )
            .is_empty()
        );
    }
}
