//! Database engines and what differs between them before any connection: the `engine` names of
//! docs/protocol.md section 4, default ports, default excluded password characters, user-name
//! limits, the alternating-users clone name (5.8) and how an engine holds two passwords (5.13).
//!
//! It imports only the protocol's vocabulary ([`crate::protocol`]). A new engine is a variant here
//! (and its family's arms), plus its rotator folder under `rotators/`; a new strategy is a row of
//! [`Engine::support`].

use std::fmt;

use crate::protocol::Strategy;

/// A database engine as named by the secret's `engine` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// `postgres`
    Postgres,
    /// `aurora-postgresql`
    AuroraPostgres,
    /// `mysql`
    Mysql,
    /// `aurora-mysql`
    AuroraMysql,
    /// `mariadb`
    Mariadb,
    /// `redis`: Redis 6+ and Valkey ACL users.
    Redis,
}

/// Engines that share a wire protocol and SQL dialect, and so one rotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// PostgreSQL and Aurora PostgreSQL.
    Postgres,
    /// MySQL, Aurora MySQL and MariaDB.
    Mysql,
    /// Redis and Valkey.
    Redis,
}

/// How an engine carries out a strategy: who changes which password. The one answer to "does
/// this engine serve this strategy", [`Engine::support`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The user changes its own password (single user).
    OwnPassword,
    /// The master creates or updates the other account, `_clone` (alternating users).
    MasterClone,
    /// The user adds its own second password, and the server keeps the current one (MySQL
    /// 8.0.14+: `RETAIN CURRENT PASSWORD`).
    DualOwn,
    /// The master writes both passwords (MariaDB's methods joined by `OR`, which unprivileged
    /// accounts cannot set; Redis ACL users' password list).
    DualMaster,
}

impl Method {
    /// Whether the master secret (`masterarn`) acts.
    pub fn needs_master(self) -> bool {
        matches!(self, Method::MasterClone | Method::DualMaster)
    }
}

/// Why an engine does not serve a strategy, and what to use instead: the end of an
/// `InvalidSecret` sentence.
pub type Refusal = &'static str;

impl Engine {
    /// Every accepted `engine` value, for error messages.
    pub(crate) const ACCEPTED: &'static str =
        "postgres, aurora-postgresql, mysql, aurora-mysql, mariadb, redis";

    /// Parses the exact, case-sensitive `engine` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "postgres" => Some(Engine::Postgres),
            "aurora-postgresql" => Some(Engine::AuroraPostgres),
            "mysql" => Some(Engine::Mysql),
            "aurora-mysql" => Some(Engine::AuroraMysql),
            "mariadb" => Some(Engine::Mariadb),
            "redis" => Some(Engine::Redis),
            _ => None,
        }
    }

    /// The `engine` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::AuroraPostgres => "aurora-postgresql",
            Engine::Mysql => "mysql",
            Engine::AuroraMysql => "aurora-mysql",
            Engine::Mariadb => "mariadb",
            Engine::Redis => "redis",
        }
    }

    /// The protocol family.
    pub fn family(self) -> Family {
        match self {
            Engine::Postgres | Engine::AuroraPostgres => Family::Postgres,
            Engine::Mysql | Engine::AuroraMysql | Engine::Mariadb => Family::Mysql,
            Engine::Redis => Family::Redis,
        }
    }

    /// The port used when the secret has none.
    pub(crate) fn default_port(self) -> u16 {
        match self.family() {
            Family::Postgres => 5432,
            Family::Mysql => 3306,
            Family::Redis => 6379,
        }
    }

    /// The longest user name the engine accepts for a clone; `mysql_limit` is
    /// `USERNAME_CHARACTER_LIMIT`, which applies to MySQL and Aurora MySQL only. PostgreSQL counts
    /// bytes (`NAMEDATALEN - 1` of UTF-8), MySQL and MariaDB count characters.
    pub fn username_limit(self, mysql_limit: usize) -> NameLimit {
        match self {
            Engine::Postgres | Engine::AuroraPostgres => NameLimit::Bytes(63),
            Engine::Mysql | Engine::AuroraMysql => NameLimit::Characters(mysql_limit),
            Engine::Mariadb => NameLimit::Characters(80),
            // Redis user names have no limit; its secrets never get a clone (see
            // `alternating_users`).
            Engine::Redis => NameLimit::Characters(usize::MAX),
        }
    }

    /// How the engine carries out `strategy`, or why it does not (docs/protocol.md 5.9, 5.13).
    /// Redis does not serve alternating users: its ACL users hold several passwords, so
    /// `dual-password` gives the same zero downtime without a second identity whose rules would
    /// have to be kept in step. PostgreSQL keeps one password per role.
    pub fn support(self, strategy: Strategy) -> Result<Method, Refusal> {
        match (self, strategy) {
            (_, Strategy::SingleUser) => Ok(Method::OwnPassword),
            (Engine::Redis, Strategy::AlternatingUsers) => Err(
                "its users hold several passwords, so use dual-password for rotation without downtime",
            ),
            (_, Strategy::AlternatingUsers) => Ok(Method::MasterClone),
            (Engine::Postgres | Engine::AuroraPostgres, Strategy::DualPassword) => Err(
                "it keeps one password per role, so use alternating-users for rotation without downtime",
            ),
            (Engine::Mysql | Engine::AuroraMysql, Strategy::DualPassword) => Ok(Method::DualOwn),
            (Engine::Mariadb | Engine::Redis, Strategy::DualPassword) => Ok(Method::DualMaster),
        }
    }

    /// The sentence refusing `strategy` for this engine, when it does not serve it.
    pub fn refusal(self, strategy: Strategy) -> Option<String> {
        self.support(strategy).err().map(|instead| {
            format!("strategy {strategy} is not supported for engine {self}; {instead}")
        })
    }

    /// Whether an account may accept every password (a Redis `nopass` user), so that a password
    /// logging in proves nothing until a wrong one is refused.
    pub fn accounts_may_accept_any_password(self) -> bool {
        self.family() == Family::Redis
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Family {
    /// Every family, for checks that must hold for each (a password policy is validated for all).
    pub(crate) const ALL: [Family; 3] = [Family::Postgres, Family::Mysql, Family::Redis];

    /// The reference's `EXCLUDE_CHARACTERS` default: the characters its SQL or connection strings
    /// would have to escape. Redis has no reference function; its default is PostgreSQL's, the
    /// characters a `redis://user:password@host` URL would have to escape.
    pub(crate) fn default_excluded_characters(self) -> &'static str {
        match self {
            Family::Postgres | Family::Redis => ":/@\"'\\",
            Family::Mysql => "/@\"'\\",
        }
    }
}

/// The longest user name an engine accepts, in the unit the engine counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLimit {
    /// UTF-8 bytes: PostgreSQL's identifiers (`é` counts 2). A longer name is silently truncated
    /// by the server, so it would name another role.
    Bytes(usize),
    /// Characters: MySQL and MariaDB user names.
    Characters(usize),
}

impl NameLimit {
    /// Whether `name` fits.
    pub fn admits(self, name: &str) -> bool {
        match self {
            NameLimit::Bytes(max) => name.len() <= max,
            NameLimit::Characters(max) => name.chars().count() <= max,
        }
    }
}

impl fmt::Display for NameLimit {
    /// `63 bytes`, `16 characters`: how an error states the limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameLimit::Bytes(max) => write!(f, "{max} bytes"),
            NameLimit::Characters(max) => write!(f, "{max} characters"),
        }
    }
}

/// Suffix of the alternate user's name.
const CLONE_SUFFIX: &str = "_clone";

/// The alternating-users partner of `username`: `_clone` appended, or stripped when present. Only
/// the lengthened name is checked against `limit`; `Err` carries the limit.
pub fn clone_name(username: &str, limit: NameLimit) -> Result<String, NameLimit> {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(original) if !original.is_empty() => Ok(original.to_owned()),
        _ => {
            let clone = format!("{username}{CLONE_SUFFIX}");
            if limit.admits(&clone) {
                Ok(clone)
            } else {
                Err(limit)
            }
        }
    }
}

/// Whether `clone` is `original` with `_clone` appended.
pub fn is_clone_of(clone: &str, original: &str) -> bool {
    clone.strip_suffix(CLONE_SUFFIX) == Some(original)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_names() {
        let pg = Engine::Postgres.username_limit(16);
        let mysql = Engine::Mysql.username_limit(16);
        assert_eq!(clone_name("app", pg), Ok("app_clone".to_owned()));
        assert_eq!(clone_name("app_clone", pg), Ok("app".to_owned()));
        assert_eq!(clone_name("_clone", pg), Ok("_clone_clone".to_owned()));
        assert_eq!(
            clone_name("abcdefghij", mysql),
            Ok("abcdefghij_clone".to_owned())
        );
        assert_eq!(clone_name("abcdefghijk", mysql), Err(mysql));
        assert_eq!(clone_name(&"x".repeat(57), pg).map(|n| n.len()), Ok(63));
        assert_eq!(clone_name(&"x".repeat(58), pg), Err(pg));
        assert_eq!(clone_name(&"x".repeat(80), mysql), Err(mysql));
        assert_eq!(
            Engine::Mariadb.username_limit(16),
            NameLimit::Characters(80)
        );
        assert_eq!(
            Engine::AuroraMysql.username_limit(32),
            NameLimit::Characters(32)
        );
        assert!(is_clone_of("app_clone", "app"));
        assert!(!is_clone_of("app", "app_clone") && !is_clone_of("app_clone", "App"));
    }

    #[test]
    fn postgres_counts_bytes_and_mysql_characters() {
        // 30 characters, 58 bytes: the clone name has 36 characters but 64 bytes.
        let name = format!("{}ab", "é".repeat(28));
        assert_eq!((name.chars().count(), name.len()), (30, 58));
        let pg = Engine::AuroraPostgres.username_limit(16);
        assert_eq!(clone_name(&name, pg), Err(NameLimit::Bytes(63)));
        assert_eq!(pg.to_string(), "63 bytes");
        // One byte less fits exactly.
        let fits = format!("{}a", "é".repeat(28));
        assert_eq!(clone_name(&fits, pg).map(|n| n.len()), Ok(63));
        // MariaDB counts the same name's clone as 36 characters, within 80; 74 `é` reach 80.
        let mariadb = Engine::Mariadb.username_limit(16);
        assert!(clone_name(&name, mariadb).is_ok());
        assert!(clone_name(&"é".repeat(74), mariadb).is_ok());
        assert_eq!(clone_name(&"é".repeat(75), mariadb), Err(mariadb));
        assert_eq!(mariadb.to_string(), "80 characters");
    }

    #[test]
    fn engines() {
        for engine in [
            Engine::Postgres,
            Engine::AuroraPostgres,
            Engine::Mysql,
            Engine::AuroraMysql,
            Engine::Mariadb,
            Engine::Redis,
        ] {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            assert!(Engine::ACCEPTED.contains(engine.as_str()));
            assert!(Family::ALL.contains(&engine.family()));
        }
        assert_eq!(Engine::parse("Postgres"), None);
        assert_eq!(Engine::AuroraPostgres.default_port(), 5432);
        assert_eq!(Engine::Mariadb.default_port(), 3306);
        assert_eq!(Engine::Redis.default_port(), 6379);
        assert_eq!(Engine::parse("valkey"), None);
    }

    #[test]
    fn strategies_each_engine_serves() {
        use Method::*;
        use Strategy::*;
        let table = [
            (
                Engine::Postgres,
                [Ok(OwnPassword), Ok(MasterClone), Err(())],
            ),
            (
                Engine::AuroraPostgres,
                [Ok(OwnPassword), Ok(MasterClone), Err(())],
            ),
            (
                Engine::Mysql,
                [Ok(OwnPassword), Ok(MasterClone), Ok(DualOwn)],
            ),
            (
                Engine::AuroraMysql,
                [Ok(OwnPassword), Ok(MasterClone), Ok(DualOwn)],
            ),
            (
                Engine::Mariadb,
                [Ok(OwnPassword), Ok(MasterClone), Ok(DualMaster)],
            ),
            (Engine::Redis, [Ok(OwnPassword), Err(()), Ok(DualMaster)]),
        ];
        for (engine, expected) in table {
            for (strategy, want) in [SingleUser, AlternatingUsers, DualPassword]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(
                    engine.support(strategy).map_err(drop),
                    want,
                    "{engine} {strategy}"
                );
                assert_eq!(engine.refusal(strategy).is_some(), want.is_err());
            }
        }
        let refusal = Engine::Postgres.refusal(DualPassword).unwrap();
        assert!(refusal.contains("use alternating-users"), "{refusal}");
        assert!(MasterClone.needs_master() && DualMaster.needs_master());
        assert!(!OwnPassword.needs_master() && !DualOwn.needs_master());
        assert!(Engine::Redis.accounts_may_accept_any_password());
        assert!(!Engine::Mariadb.accounts_may_accept_any_password());
    }
}
