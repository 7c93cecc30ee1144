//! The privilege invariant on PostgreSQL (docs/protocol.md 5.12), checked in the master's
//! transaction before it changes anything, and again before it commits.
//!
//! - **Adding `_clone`** onto an existing clone: the clone may have nothing the original lacks:
//!   no power-granting role attribute; no role it may use, become or grant beyond what the
//!   original may (membership is followed through every level with `pg_has_role`, so a role
//!   reached through another counts, and `ADMIN OPTION`, `INHERIT` and, from PostgreSQL 16, `SET`
//!   are compared); no object it owns or holds privileges on, no row-security policy naming it,
//!   in any database (`pg_shdepend`, shared by the cluster); no superuser-only setting attached to
//!   it (`ALTER ROLE … SET`) that the original lacks.
//! - **Removing `_clone`**: the clone must already be able to become the original (`SET ROLE`,
//!   which also carries the original's attributes) and, since `SET ROLE` does not carry it, hold
//!   `REPLICATION` if the original does. The original must exist.

use tokio_postgres::Transaction;

use super::session::statement_code;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::Error;
use crate::rotators::driver::database_error;
use crate::rotators::{Handover, privilege_gap};

/// Role attributes that grant power, as errors name them, in `pg_roles`' column order below.
const ATTRIBUTES: [&str; 5] = [
    "SUPERUSER",
    "CREATEROLE",
    "CREATEDB",
    "REPLICATION",
    "BYPASSRLS",
];

/// What the checks are called in errors.
const CHECKING: &str = "comparing the privileges of the user and its clone";

/// A role as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Role {
    oid: u32,
    /// [`ATTRIBUTES`], in order.
    attributes: [bool; 5],
}

/// What one role may do with another: use its privileges (`USAGE`, inherited), become it (`SET
/// ROLE`), grant it to others (`ADMIN OPTION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Power {
    usage: bool,
    set: bool,
    admin: bool,
}

impl Power {
    /// Whether `other` may do at least as much: inherited privileges are matched by inheriting
    /// them or by becoming the role.
    fn within(self, other: Power) -> bool {
        (!self.usage || other.usage || other.set)
            && (!self.set || other.set)
            && (!self.admin || other.admin)
    }
}

/// A role the clone reaches, with what the clone and the original may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reach {
    role: String,
    clone: Power,
    original: Power,
}

/// Everything the append check compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    clone_attributes: [bool; 5],
    original_attributes: [bool; 5],
    reach: Vec<Reach>,
    /// `pg_shdepend` types (`o` owner, `a` privileges, `r` policy, …) and counts for the clone.
    dependencies: Vec<(String, i64)>,
    /// Superuser-only parameters set on the clone and not on the original.
    settings: Vec<String>,
}

/// The queries, in the master's transaction.
struct Catalog<'a> {
    transaction: &'a Transaction<'a>,
    engine: Engine,
}

impl Catalog<'_> {
    fn failed(&self, e: &tokio_postgres::Error) -> Error {
        database_error(self.engine, CHECKING, statement_code(e))
    }

    async fn role(&self, name: &str) -> Result<Option<Role>, Error> {
        let row = self
            .transaction
            .query_opt(
                "SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
                 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(row.map(|row| Role {
            oid: row.get(0),
            attributes: std::array::from_fn(|i| row.get(i + 1)),
        }))
    }

    /// The privilege that means "may `SET ROLE`": `SET` from PostgreSQL 16, where membership
    /// alone may confer nothing; `MEMBER` before.
    async fn set_privilege(&self) -> Result<&'static str, Error> {
        let version: i32 = self
            .transaction
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| self.failed(&e))?
            .get(0);
        Ok(if version >= 160_000 { "SET" } else { "MEMBER" })
    }

    /// Every role `of` is a member of, directly or not, with what `of` and `other` may do with it.
    async fn reach(&self, of: u32, other: u32) -> Result<Vec<Reach>, Error> {
        let set = self.set_privilege().await?;
        let query = format!(
            "SELECT r.rolname::text, \
             pg_has_role($1::oid, r.oid, 'USAGE'), pg_has_role($1::oid, r.oid, '{set}'), \
             pg_has_role($1::oid, r.oid, 'MEMBER WITH ADMIN OPTION'), \
             pg_has_role($2::oid, r.oid, 'USAGE'), pg_has_role($2::oid, r.oid, '{set}'), \
             pg_has_role($2::oid, r.oid, 'MEMBER WITH ADMIN OPTION') \
             FROM pg_catalog.pg_roles r \
             WHERE r.oid <> $1::oid AND pg_has_role($1::oid, r.oid, 'MEMBER') ORDER BY 1"
        );
        let rows = self
            .transaction
            .query(&query, &[&of, &other])
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows
            .iter()
            .map(|row| Reach {
                role: row.get(0),
                clone: Power {
                    usage: row.get(1),
                    set: row.get(2),
                    admin: row.get(3),
                },
                original: Power {
                    usage: row.get(4),
                    set: row.get(5),
                    admin: row.get(6),
                },
            })
            .collect())
    }

    /// What depends on the role in any database: objects it owns, privileges granted to it,
    /// policies naming it.
    async fn dependencies(&self, role: u32) -> Result<Vec<(String, i64)>, Error> {
        let rows = self
            .transaction
            .query(
                "SELECT deptype::text, count(*) FROM pg_catalog.pg_shdepend \
                 WHERE refclassid = 'pg_catalog.pg_authid'::regclass AND refobjid = $1::oid \
                 GROUP BY 1 ORDER BY 1",
                &[&role],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Superuser-only parameters attached to `of` (`ALTER ROLE … SET`) that `other` does not
    /// have with the same value in the same database (or all): their names only.
    async fn settings(&self, of: u32, other: u32) -> Result<Vec<String>, Error> {
        let rows = self
            .transaction
            .query(
                "SELECT DISTINCT lower(split_part(c.setting, '=', 1)) \
                 FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c(setting) \
                 WHERE s.setrole = $1::oid \
                 AND EXISTS (SELECT 1 FROM pg_catalog.pg_settings p \
                   WHERE p.name = lower(split_part(c.setting, '=', 1)) AND p.context = 'superuser') \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting o, \
                   unnest(o.setconfig) AS oc(setting) WHERE o.setrole = $2::oid \
                   AND o.setdatabase IN (0, s.setdatabase) AND oc.setting = c.setting) \
                 ORDER BY 1",
                &[&of, &other],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// Enforces the invariant for handing `original`'s clone `clone` over in `handover`'s
/// direction: `Err` ([`Error::PrivilegeMismatch`]) names both roles and what differs.
pub(super) async fn enforce(
    transaction: &Transaction<'_>,
    engine: Engine,
    ctx: &StepContext<'_>,
    handover: Handover,
    original: &str,
    clone: &str,
) -> Result<(), Error> {
    let excess = excess(transaction, engine, handover, original, clone).await?;
    if excess.is_empty() {
        return Ok(());
    }
    let (given, current) = match handover {
        Handover::Append => (clone, original),
        Handover::Strip => (original, clone),
    };
    Err(privilege_gap(
        ctx,
        given.to_owned(),
        current.to_owned(),
        excess,
    ))
}

/// What the account handed over in `handover`'s direction may do and the current one may not:
/// empty when the invariant holds. Reads the catalogs only.
pub(super) async fn excess(
    transaction: &Transaction<'_>,
    engine: Engine,
    handover: Handover,
    original: &str,
    clone: &str,
) -> Result<Vec<String>, Error> {
    let catalog = Catalog {
        transaction,
        engine,
    };
    match handover {
        Handover::Append => {
            let Some(clone_role) = catalog.role(clone).await? else {
                return Ok(Vec::new());
            };
            let Some(original_role) = catalog.role(original).await? else {
                return Err(database_error(
                    engine,
                    CHECKING,
                    "the current user has no role",
                ));
            };
            let facts = Facts {
                clone_attributes: clone_role.attributes,
                original_attributes: original_role.attributes,
                reach: catalog.reach(clone_role.oid, original_role.oid).await?,
                dependencies: catalog.dependencies(clone_role.oid).await?,
                settings: catalog.settings(clone_role.oid, original_role.oid).await?,
            };
            Ok(append_excess(&facts, original))
        }
        Handover::Strip => match (catalog.role(original).await?, catalog.role(clone).await?) {
            (Some(original_role), Some(clone_role)) => {
                let reach = catalog.reach(clone_role.oid, original_role.oid).await?;
                let power = reach
                    .iter()
                    .find(|r| r.role == original)
                    .map(|r| r.clone)
                    .unwrap_or_default();
                Ok(strip_excess(
                    power,
                    clone_role.attributes,
                    original_role.attributes,
                    original,
                ))
            }
            _ => Ok(vec![format!(
                "the role {original} itself, which does not exist, so the clone cannot be \
                 shown to hold its privileges"
            )]),
        },
    }
}

/// Attributes set in `a` and not in `b`.
fn extra_attributes(a: [bool; 5], b: [bool; 5]) -> impl Iterator<Item = String> {
    ATTRIBUTES
        .into_iter()
        .zip(a.into_iter().zip(b))
        .filter(|(_, (a, b))| *a && !*b)
        .map(|(name, _)| format!("role attribute {name}"))
}

/// What an existing clone may do and `original` may not.
fn append_excess(facts: &Facts, original: &str) -> Vec<String> {
    let mut excess: Vec<String> =
        extra_attributes(facts.clone_attributes, facts.original_attributes).collect();
    for reach in &facts.reach {
        if reach.clone.within(reach.original) {
            continue;
        }
        let role = &reach.role;
        if reach.clone.admin && !reach.original.admin {
            excess.push(format!("ADMIN OPTION on role {role}"));
        }
        if role != original
            && !(Power {
                admin: false,
                ..reach.clone
            })
            .within(reach.original)
        {
            excess.push(format!("membership in role {role}"));
        }
    }
    for (kind, count) in &facts.dependencies {
        excess.push(match kind.as_str() {
            "o" => format!("ownership of {count} object(s)"),
            "a" => format!("privileges granted directly on {count} object(s)"),
            "r" => format!("{count} row-security polic(ies) naming it"),
            other => format!("{count} other dependencie(s) of type {other}"),
        });
    }
    excess.extend(
        facts
            .settings
            .iter()
            .map(|name| format!("superuser-only setting {name}")),
    );
    excess
}

/// What the original may do and the current clone may not.
fn strip_excess(
    clone_on_original: Power,
    clone: [bool; 5],
    original: [bool; 5],
    name: &str,
) -> Vec<String> {
    let mut excess = Vec::new();
    if !clone_on_original.set {
        excess.push(format!(
            "the privileges of role {name}, since the clone is not a member of it"
        ));
    }
    // SET ROLE carries every attribute but REPLICATION, which is the login role's.
    let replication = [false, false, false, original[3], false];
    excess.extend(extra_attributes(replication, clone));
    excess
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Power = Power {
        usage: true,
        set: true,
        admin: false,
    };

    fn reach(role: &str, clone: Power, original: Power) -> Reach {
        Reach {
            role: role.to_owned(),
            clone,
            original,
        }
    }

    #[test]
    fn a_clone_made_by_this_function_has_nothing_more() {
        // Member of the original, which is in `readers`; owns nothing.
        let facts = Facts {
            reach: vec![reach("app", FULL, FULL), reach("readers", FULL, FULL)],
            ..Facts::default()
        };
        assert!(append_excess(&facts, "app").is_empty());
    }

    #[test]
    fn an_over_privileged_clone_is_described() {
        let facts = Facts {
            clone_attributes: [true, false, true, false, false],
            original_attributes: [false, false, true, false, false],
            reach: vec![
                reach(
                    "app",
                    Power {
                        admin: true,
                        ..FULL
                    },
                    FULL,
                ),
                reach("pg_read_all_data", FULL, Power::default()),
                // The original may become it: inheriting it is no more.
                reach(
                    "auditors",
                    FULL,
                    Power {
                        usage: false,
                        set: true,
                        admin: false,
                    },
                ),
                reach(
                    "granted",
                    Power {
                        admin: true,
                        ..FULL
                    },
                    FULL,
                ),
            ],
            dependencies: vec![("a".into(), 2), ("o".into(), 3)],
            settings: vec!["lo_compat_privileges".into()],
        };
        assert_eq!(
            append_excess(&facts, "app"),
            [
                "role attribute SUPERUSER",
                "ADMIN OPTION on role app",
                "membership in role pg_read_all_data",
                "ADMIN OPTION on role granted",
                "privileges granted directly on 2 object(s)",
                "ownership of 3 object(s)",
                "superuser-only setting lo_compat_privileges",
            ]
        );
    }

    #[test]
    fn powers_compare() {
        let usage = Power {
            usage: true,
            ..Power::default()
        };
        let set = Power {
            set: true,
            ..Power::default()
        };
        assert!(usage.within(set) && usage.within(FULL));
        assert!(!set.within(usage) && !FULL.within(usage));
        assert!(Power::default().within(Power::default()));
        assert!(
            !Power {
                admin: true,
                ..Power::default()
            }
            .within(FULL)
        );
    }

    #[test]
    fn the_clone_must_be_able_to_become_the_original() {
        let none = [false; 5];
        assert!(strip_excess(FULL, none, none, "app").is_empty());
        // SET ROLE carries SUPERUSER and the rest; not REPLICATION.
        let original = [true, true, true, true, true];
        assert_eq!(
            strip_excess(FULL, none, original, "app"),
            ["role attribute REPLICATION"]
        );
        assert_eq!(
            strip_excess(
                Power {
                    usage: true,
                    set: false,
                    admin: false
                },
                none,
                none,
                "app"
            ),
            ["the privileges of role app, since the clone is not a member of it"]
        );
    }
}
