//! What an account may do, from its `SHOW GRANTS` lines, and what one account may do that another
//! may not (docs/protocol.md 5.12).
//!
//! The server groups grants its own way (one line per object, `ALL PRIVILEGES` for a full set,
//! column lists in parentheses), so each line is split into [`Unit`]s, one privilege on one object,
//! one role, one proxied account, and a unit is covered by an equal or broader one: `*.*` covers a
//! database, a database its tables and routines, a table its columns, `ALL PRIVILEGES` every
//! privilege but `GRANT OPTION`. MySQL's partial revokes narrow what a grant covers. What this
//! module does not understand (a database-name pattern against a name, an unknown line) is never
//! covered, so an unclear difference refuses the rotation rather than letting it through.
//!
//! Default roles (`SET DEFAULT ROLE`) confer nothing by themselves and are not compared; resource
//! limits and the TLS requirement are not privileges (the TLS requirement is copied).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use super::grants::{GrantLine, rewrite_grant};
use super::lexer::{Tok, Token, find_top_level, tokenize};

/// What a grant applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Object {
    /// `*.*`
    Global,
    /// `` `db`.* `` (the name as printed: it may be a pattern such as `db%`).
    Database(String),
    /// `` `db`.`table` ``
    Table(String, String),
    /// `` PROCEDURE `db`.`name` `` (or `FUNCTION`, `PACKAGE`, `PACKAGE BODY`).
    Routine(String, String, String),
    /// Anything else, compared as printed.
    Other(String),
}

impl Object {
    /// Whether a grant on `self` applies to `other`.
    fn contains(&self, other: &Object) -> bool {
        match (self, other) {
            (Object::Global, Object::Other(_)) => false,
            (Object::Global, _) => true,
            (Object::Database(a), Object::Table(b, _) | Object::Routine(_, b, _)) => a == b,
            (a, b) => a == b,
        }
    }
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Global => f.write_str("*.*"),
            Object::Database(db) => write!(f, "{}.*", quoted(db)),
            Object::Table(db, table) => write!(f, "{}.{}", quoted(db), quoted(table)),
            Object::Routine(kind, db, name) => write!(f, "{kind} {}.{}", quoted(db), quoted(name)),
            Object::Other(text) => f.write_str(text),
        }
    }
}

/// One thing an account may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Unit {
    /// A privilege (`SELECT`, `ALL PRIVILEGES`, `GRANT OPTION`, …) on an object, or on one column.
    Privilege {
        name: String,
        column: Option<String>,
        object: Object,
    },
    /// A role, as printed (`` `reader` ``, `` `reader`@`%` ``).
    Role(String),
    /// `WITH ADMIN OPTION` on a role: it may be granted to others.
    RoleAdmin(String),
    /// `PROXY` on an account, as printed.
    Proxy(String),
    /// `PROXY … WITH GRANT OPTION`.
    ProxyGrant(String),
    /// A line this module does not understand: never covered. Its text is not kept (it could in
    /// principle carry a credential), only its position.
    Unrecognised(usize),
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Privilege {
                name,
                column: Some(column),
                object,
            } => write!(f, "{name} ({}) ON {object}", quoted(column)),
            Unit::Privilege { name, object, .. } => write!(f, "{name} ON {object}"),
            Unit::Role(role) => write!(f, "role {role}"),
            Unit::RoleAdmin(role) => write!(f, "ADMIN OPTION on role {role}"),
            Unit::Proxy(account) => write!(f, "PROXY ON {account}"),
            Unit::ProxyGrant(account) => write!(f, "PROXY ON {account} WITH GRANT OPTION"),
            Unit::Unrecognised(n) => write!(f, "SHOW GRANTS line {n}, which is not understood"),
        }
    }
}

/// A MySQL partial revoke: `name` is not held on `object` whatever broader grant says so.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Revoke {
    name: String,
    object: Object,
}

/// Everything an account's `SHOW GRANTS` lines confer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Privileges {
    units: BTreeSet<Unit>,
    revokes: BTreeSet<Revoke>,
}

impl Privileges {
    /// Reads the `SHOW GRANTS FOR user@host` lines. `Err` names what could not be understood
    /// about the grantee, never the line.
    pub(super) fn from_show_grants(
        lines: &[String],
        user: &str,
        host: &str,
    ) -> Result<Self, &'static str> {
        let mut privileges = Privileges::default();
        for (n, line) in lines.iter().enumerate() {
            // Checks the grantee; the placeholder target is never used.
            match rewrite_grant(line, user, host, "``@``")? {
                GrantLine::Usage => {}
                GrantLine::Unknown => {
                    privileges.units.insert(Unit::Unrecognised(n + 1));
                }
                GrantLine::Proxy | GrantLine::Replay(_) => {
                    if !privileges.read_line(line) {
                        privileges.units.insert(Unit::Unrecognised(n + 1));
                    }
                }
            }
        }
        Ok(privileges)
    }

    /// Adds one `GRANT` or `REVOKE` line's units; `false` when the line is not understood.
    fn read_line(&mut self, line: &str) -> bool {
        let Some(tokens) = tokenize(line) else {
            return false;
        };
        let first = |w: &str| tokens.first().is_some_and(|t| t.is_word(w));
        if first("SET") {
            // SET DEFAULT ROLE: confers nothing by itself.
            return true;
        }
        let (revoke, grantee_word) = if first("GRANT") {
            (false, "TO")
        } else if first("REVOKE") {
            (true, "FROM")
        } else {
            return false;
        };
        let Some(to) = find_top_level(&tokens, 1, grantee_word) else {
            return false;
        };
        let on = find_top_level(&tokens[..to], 1, "ON");
        let items = list_items(line, &tokens, 1..on.unwrap_or(to));
        let tail = &tokens[to..];
        // `WITH GRANT OPTION`, `WITH ADMIN OPTION`; MariaDB may add resource limits after them.
        let with = |a: &str, b: &str| tail.windows(2).any(|w| w[0].is_word(a) && w[1].is_word(b));
        let Some(on) = on else {
            // Roles.
            if revoke {
                return false;
            }
            let admin = with("ADMIN", "OPTION");
            for (role, _) in items {
                if admin {
                    self.units.insert(Unit::RoleAdmin(role.clone()));
                }
                self.units.insert(Unit::Role(role));
            }
            return true;
        };
        let object_text = line[tokens[on + 1].span.start..tokens[to - 1].span.end].trim();
        if items.len() == 1 && items[0].0.eq_ignore_ascii_case("PROXY") {
            self.units.insert(Unit::Proxy(object_text.to_owned()));
            if with("GRANT", "OPTION") {
                self.units.insert(Unit::ProxyGrant(object_text.to_owned()));
            }
            return true;
        }
        let object = parse_object(&tokens[on + 1..to], object_text);
        if revoke {
            for (name, _) in items {
                self.revokes.insert(Revoke {
                    name: name.to_ascii_uppercase(),
                    object: object.clone(),
                });
            }
        } else {
            self.add_privileges(items, &object, with("GRANT", "OPTION"));
        }
        true
    }

    /// One unit per privilege and column of `items` on `object`, plus `GRANT OPTION`.
    fn add_privileges(
        &mut self,
        items: Vec<(String, Vec<String>)>,
        object: &Object,
        grant_option: bool,
    ) {
        for (name, columns) in items {
            let name = name.to_ascii_uppercase();
            if name == "USAGE" {
                continue;
            }
            let columns = if columns.is_empty() {
                vec![None]
            } else {
                columns.into_iter().map(Some).collect()
            };
            for column in columns {
                self.units.insert(Unit::Privilege {
                    name: name.clone(),
                    column,
                    object: object.clone(),
                });
            }
        }
        if grant_option {
            self.units.insert(Unit::Privilege {
                name: "GRANT OPTION".to_owned(),
                column: None,
                object: object.clone(),
            });
        }
    }

    /// Whether this account may do `unit`.
    fn covers(&self, unit: &Unit) -> bool {
        let Unit::Privilege {
            name,
            column,
            object,
        } = unit
        else {
            return !matches!(unit, Unit::Unrecognised(_)) && self.units.contains(unit);
        };
        let granted = self.units.iter().any(|held| match held {
            Unit::Privilege {
                name: held_name,
                column: held_column,
                object: held_object,
            } => {
                (held_name == name || (held_name == "ALL PRIVILEGES" && name != "GRANT OPTION"))
                    && (held_column.is_none() || held_column == column)
                    && held_object.contains(object)
            }
            _ => false,
        });
        let revoked = self
            .revokes
            .iter()
            .any(|r| (r.name == *name || r.name == "ALL PRIVILEGES") && r.object.contains(object));
        granted && !revoked
    }

    /// Whether this account holds `name` on `*.*` (`CREATE USER`, …).
    pub(super) fn holds_global(&self, name: &str) -> bool {
        self.covers(&Unit::Privilege {
            name: name.to_owned(),
            column: None,
            object: Object::Global,
        })
    }

    /// What `grantor` could not give another account of this one's privileges: a privilege it
    /// lacks or lacks `GRANT OPTION` on, a role it holds without `ADMIN OPTION`, a line not
    /// understood. `PROXY` grants are left out: they are not replayed.
    pub(super) fn not_grantable_by(&self, grantor: &Privileges) -> Vec<String> {
        self.units
            .iter()
            .filter(|unit| match unit {
                Unit::Privilege { object, .. } => {
                    !grantor.covers(unit)
                        || !grantor.covers(&Unit::Privilege {
                            name: "GRANT OPTION".to_owned(),
                            column: None,
                            object: object.clone(),
                        })
                }
                Unit::Role(role) | Unit::RoleAdmin(role) => {
                    !grantor.covers(&Unit::RoleAdmin(role.clone()))
                }
                Unit::Proxy(_) | Unit::ProxyGrant(_) => false,
                Unit::Unrecognised(_) => true,
            })
            .map(Unit::to_string)
            .collect()
    }

    /// What this account may do and `other` may not, as text naming privileges and objects:
    /// units `other` does not cover, and partial revokes of `other` this account lacks.
    pub(super) fn excess_over(&self, other: &Privileges) -> Vec<String> {
        let mut excess: Vec<String> = self
            .units
            .iter()
            .filter(|unit| !other.covers(unit))
            .map(Unit::to_string)
            .collect();
        // A partial revoke of `other` matters where this account holds what it revokes.
        excess.extend(
            other
                .revokes
                .difference(&self.revokes)
                .filter(|r| {
                    self.covers(&Unit::Privilege {
                        name: r.name.clone(),
                        column: None,
                        object: r.object.clone(),
                    })
                })
                .map(|r| {
                    format!(
                        "{} ON {} (partially revoked from the other)",
                        r.name, r.object
                    )
                }),
        );
        excess
    }
}

/// The comma-separated items of a privilege or role list, each as printed and with its column
/// names, if any (`SELECT (`a`, `b`)` gives `SELECT` and `a`, `b`).
fn list_items(line: &str, tokens: &[Token], range: Range<usize>) -> Vec<(String, Vec<String>)> {
    let mut items = Vec::new();
    let mut name: Option<Range<usize>> = None;
    let mut columns = Vec::new();
    let mut depth = 0usize;
    for token in &tokens[range] {
        if token.is_punct('(') {
            depth += 1;
        } else if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        } else if depth > 0 {
            if let Some(column) = token.name() {
                columns.push(column.to_owned());
            }
        } else if token.is_punct(',') {
            if let Some(span) = name.take() {
                items.push((line[span].to_owned(), std::mem::take(&mut columns)));
            }
        } else {
            let span = name.get_or_insert(token.span.clone());
            span.end = token.span.end;
        }
    }
    if let Some(span) = name {
        items.push((line[span].to_owned(), columns));
    }
    items
}

/// The object of a grant, from its tokens (between `ON` and `TO`).
fn parse_object(tokens: &[Token], text: &str) -> Object {
    let name = |t: &Token| match &t.tok {
        Tok::Quoted(s) | Tok::Word(s) => Some(s.clone()),
        Tok::Punct(_) => None,
    };
    let routine_kinds = ["PROCEDURE", "FUNCTION", "PACKAGE"];
    let (kind, rest) = match tokens.first() {
        Some(t) if routine_kinds.iter().any(|k| t.is_word(k)) => {
            let body = tokens.get(1).is_some_and(|t| t.is_word("BODY"));
            let skip = if body { 2 } else { 1 };
            let kind = if body {
                "PACKAGE BODY".to_owned()
            } else {
                t.name().unwrap_or_default().to_ascii_uppercase()
            };
            (Some(kind), &tokens[skip..])
        }
        _ => (None, tokens),
    };
    match (kind, rest) {
        (None, [a, dot, b]) if a.is_punct('*') && dot.is_punct('.') && b.is_punct('*') => {
            Object::Global
        }
        (None, [db, dot, star]) if dot.is_punct('.') && star.is_punct('*') => {
            name(db).map_or_else(|| Object::Other(text.to_owned()), Object::Database)
        }
        (kind, [db, dot, item]) if dot.is_punct('.') => match (name(db), name(item)) {
            (Some(db), Some(item)) => match kind {
                Some(kind) => Object::Routine(kind, db, item),
                None => Object::Table(db, item),
            },
            _ => Object::Other(text.to_owned()),
        },
        _ => Object::Other(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privileges(lines: &[&str]) -> Privileges {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        Privileges::from_show_grants(&lines, "u", "%").unwrap()
    }

    /// As MariaDB 10.11 prints them (observed on the test server).
    const FULL: &[&str] = &[
        "GRANT `r1` TO `u`@`%` WITH ADMIN OPTION",
        "GRANT `r2` TO `u`@`%`",
        "GRANT RELOAD, PROCESS ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*B69027D44F6E5EDC07F1AEAD1477967B16F28227'",
        "GRANT SELECT ON `db`.* TO `u`@`%` WITH GRANT OPTION",
        "GRANT UPDATE ON `db%`.* TO `u`@`%`",
        "GRANT SELECT (`a`, `b`), INSERT (`a`) ON `db`.`t` TO `u`@`%`",
        "GRANT EXECUTE ON PROCEDURE `mysql`.`addgeometrycolumn` TO `u`@`%`",
        "SET DEFAULT ROLE `r1` FOR `u`@`%`",
    ];

    #[test]
    fn show_grants_split_into_units() {
        let p = privileges(FULL);
        let units: Vec<String> = p.units.iter().map(Unit::to_string).collect();
        for expected in [
            "role `r1`",
            "ADMIN OPTION on role `r1`",
            "role `r2`",
            "RELOAD ON *.*",
            "PROCESS ON *.*",
            "SELECT ON `db`.*",
            "GRANT OPTION ON `db`.*",
            "UPDATE ON `db%`.*",
            "SELECT (`a`) ON `db`.`t`",
            "SELECT (`b`) ON `db`.`t`",
            "INSERT (`a`) ON `db`.`t`",
            "EXECUTE ON PROCEDURE `mysql`.`addgeometrycolumn`",
        ] {
            assert!(units.iter().any(|u| u == expected), "{expected}: {units:?}");
        }
        assert_eq!(units.len(), 12, "{units:?}");
        // The same account has nothing the other lacks.
        assert!(p.excess_over(&p).is_empty());
        assert!(Privileges::default().excess_over(&p).is_empty());
    }

    #[test]
    fn broader_grants_cover_narrower_ones() {
        let broad = privileges(&[
            "GRANT SELECT ON *.* TO `u`@`%`",
            "GRANT ALL PRIVILEGES ON `db`.* TO `u`@`%`",
        ]);
        let narrow = privileges(&[
            "GRANT SELECT (`a`) ON `other`.`t` TO `u`@`%`",
            "GRANT INSERT, DELETE ON `db`.`t` TO `u`@`%`",
            "GRANT EXECUTE ON FUNCTION `db`.`f` TO `u`@`%`",
            "GRANT CREATE ON `db`.* TO `u`@`%`",
        ]);
        assert!(narrow.excess_over(&broad).is_empty());
        assert_eq!(
            broad.excess_over(&narrow),
            ["ALL PRIVILEGES ON `db`.*", "SELECT ON *.*"]
        );
        // ALL PRIVILEGES does not include GRANT OPTION; a pattern covers no named database.
        let grantor = privileges(&["GRANT SELECT ON `db`.* TO `u`@`%` WITH GRANT OPTION"]);
        assert_eq!(grantor.excess_over(&broad), ["GRANT OPTION ON `db`.*"]);
        let pattern = privileges(&["GRANT SELECT ON `db%`.* TO `u`@`%`"]);
        let named = privileges(&["GRANT SELECT ON `db1`.* TO `u`@`%`"]);
        assert_eq!(named.excess_over(&pattern), ["SELECT ON `db1`.*"]);
        // A column is not the whole table.
        let column = privileges(&["GRANT UPDATE (`a`) ON `db`.`t` TO `u`@`%`"]);
        let table = privileges(&["GRANT UPDATE ON `db`.`t` TO `u`@`%`"]);
        assert!(column.excess_over(&table).is_empty());
        assert_eq!(table.excess_over(&column), ["UPDATE ON `db`.`t`"]);
    }

    #[test]
    fn roles_admin_options_and_proxies_compare() {
        let plain = privileges(&["GRANT `r` TO `u`@`%`"]);
        let admin = privileges(&["GRANT `r` TO `u`@`%` WITH ADMIN OPTION"]);
        assert_eq!(admin.excess_over(&plain), ["ADMIN OPTION on role `r`"]);
        assert!(plain.excess_over(&admin).is_empty());
        let mysql_role = privileges(&["GRANT `r`@`%`,`w`@`%` TO `u`@`%`"]);
        assert_eq!(
            mysql_role.excess_over(&plain),
            ["role `r`@`%`", "role `w`@`%`"]
        );
        let proxy = privileges(&["GRANT PROXY ON ''@'%' TO 'u'@'%' WITH GRANT OPTION"]);
        assert_eq!(
            proxy.excess_over(&plain),
            ["PROXY ON ''@'%'", "PROXY ON ''@'%' WITH GRANT OPTION"]
        );
    }

    #[test]
    fn partial_revokes_narrow_a_grant() {
        // MySQL 8 with partial_revokes=ON.
        let restricted = privileges(&[
            "GRANT SELECT, INSERT ON *.* TO `u`@`%`",
            "REVOKE INSERT ON `mysql`.* FROM `u`@`%`",
        ]);
        let full = privileges(&["GRANT SELECT, INSERT ON *.* TO `u`@`%`"]);
        assert_eq!(
            full.excess_over(&restricted),
            ["INSERT ON `mysql`.* (partially revoked from the other)"]
        );
        assert!(restricted.excess_over(&full).is_empty());
        let on_mysql = privileges(&["GRANT INSERT ON `mysql`.`user` TO `u`@`%`"]);
        assert_eq!(
            on_mysql.excess_over(&restricted),
            ["INSERT ON `mysql`.`user`"]
        );
    }

    #[test]
    fn what_a_grantor_could_not_give() {
        let app = privileges(&[
            "GRANT SELECT, INSERT ON `orders`.* TO `u`@`%`",
            "GRANT `reader` TO `u`@`%`",
        ]);
        // RDS's master: global privileges with GRANT OPTION, and the role with ADMIN OPTION.
        let rds_master = privileges(&[
            "GRANT SELECT, INSERT, UPDATE, CREATE USER ON *.* TO `u`@`%` WITH GRANT OPTION",
            "GRANT `reader` TO `u`@`%` WITH ADMIN OPTION",
        ]);
        assert!(app.not_grantable_by(&rds_master).is_empty());
        assert!(rds_master.holds_global("CREATE USER"));
        // Without GRANT OPTION, or without the role's ADMIN OPTION.
        let weak = privileges(&[
            "GRANT SELECT, INSERT ON *.* TO `u`@`%`",
            "GRANT `reader` TO `u`@`%`",
        ]);
        assert_eq!(
            app.not_grantable_by(&weak),
            [
                "INSERT ON `orders`.*",
                "SELECT ON `orders`.*",
                "role `reader`"
            ]
        );
        assert!(!weak.holds_global("CREATE USER"));
    }

    #[test]
    fn what_is_not_understood_is_never_covered() {
        let odd = privileges(&["GRANT USAGE ON *.* TO `u`@`%`", "SHOW WARNINGS"]);
        assert_eq!(
            odd.excess_over(&odd),
            ["SHOW GRANTS line 2, which is not understood"]
        );
        // Another grantee is an error, not a difference.
        let lines = vec!["GRANT SELECT ON `db`.* TO `v`@`%`".to_owned()];
        assert!(Privileges::from_show_grants(&lines, "u", "%").is_err());
        // Resource limits and default roles confer nothing.
        let limits = privileges(&[
            "GRANT USAGE ON *.* TO `u`@`%` WITH MAX_QUERIES_PER_HOUR 5",
            "SET DEFAULT ROLE `r` FOR `u`@`%`",
        ]);
        assert_eq!(limits, Privileges::default());
        // A global GRANT OPTION alone (MariaDB prints it on the USAGE line).
        let grant_option = privileges(&["GRANT USAGE ON *.* TO `u`@`%` WITH GRANT OPTION"]);
        assert_eq!(
            grant_option.excess_over(&Privileges::default()),
            ["GRANT OPTION ON *.*"]
        );
    }
}
