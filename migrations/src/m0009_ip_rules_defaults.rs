//! IP rules whose `default_access` follows the allow list (issue 13).
//!
//! Before: `default_access` defaulted to `allow`, so an `allow` list did nothing unless
//! `default_access` was also `deny`, and every stored profile row spelled `default_access`
//! out. Now an absent `default_access` is derived (`deny` when `allow` is non-empty, else
//! `allow`) and an explicit `allow` beside a non-empty allow list is refused (`no_effect`).
//!
//! Every row keeps its behaviour:
//! - an explicit value equal to the derived one is dropped (the row then follows the new
//!   rules when its lists change);
//! - `deny` with an empty allow list stays explicit;
//! - `allow` with a non-empty allow list (a list that admitted no one extra) stays explicit,
//!   and the ineffective list is moved out, into an audit event (`profile.ip_rules.migrate`,
//!   actor `system`, details `{dropped_allow, why}`), so the row is valid again and nothing is
//!   lost silently.
//!
//! Down writes the derived `default_access` back into rows without one, which the old code
//! reads as it was meant (an absent value there meant `allow`); moved lists stay in the audit
//! log (they had no effect before either).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;
use serde_json::{Map, Value, json};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_ip_rules_defaults"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

/// Why a moved allow list had no effect (recorded in the audit event).
const WHY: &str = "default_access was allow, so this allow list admitted no one extra; \
     allow lists now mean that only the listed addresses get in, and an explicit allow \
     beside a non-empty allow list is refused (no_effect). The profile keeps its behaviour: \
     default_access stays allow and the list was removed.";

/// What the migration does with one row's `ip_rules` text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rewrite {
    /// Leave the row as it is.
    Keep,
    /// Store `text` instead; `dropped_allow` (non-empty) goes into an audit event.
    Change {
        text: String,
        dropped_allow: Vec<Value>,
    },
}

fn derived(allow: &Map<String, Value>) -> &'static str {
    let listed = allow
        .get("allow")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if listed { "deny" } else { "allow" }
}

/// The row rewrite (pure): see the module documentation. Text that is not a JSON object, has
/// no `default_access` or an unknown one is kept as it is.
fn rewrite(text: &str) -> Rewrite {
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) else {
        return Rewrite::Keep;
    };
    let Some(given) = doc
        .get("default_access")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Rewrite::Keep;
    };
    let derived = derived(&doc);
    match (given.as_str(), derived) {
        (g, d) if g == d => {
            doc.remove("default_access");
            Rewrite::Change {
                text: Value::Object(doc).to_string(),
                dropped_allow: Vec::new(),
            }
        }
        ("allow", "deny") => {
            let dropped_allow = match doc.insert("allow".to_owned(), json!([])) {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            Rewrite::Change {
                text: Value::Object(doc).to_string(),
                dropped_allow,
            }
        }
        // ("deny", "allow"): an explicit deny without an allow list stays; anything else is
        // not ours to judge.
        _ => Rewrite::Keep,
    }
}

/// The reverse rewrite (pure): a row without `default_access` gets the derived one spelled
/// out, as the old code needs it; `None` leaves the row as it is.
fn restore(text: &str) -> Option<String> {
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if doc.contains_key("default_access") {
        return None;
    }
    let derived = derived(&doc);
    doc.insert("default_access".to_owned(), json!(derived));
    Some(Value::Object(doc).to_string())
}

async fn rows(manager: &SchemaManager<'_>) -> Result<Vec<(String, String)>, DbErr> {
    let select = Query::select()
        .columns([id("id"), id("ip_rules")])
        .from(id("access_profiles"))
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let mut out = Vec::new();
    for row in manager.get_connection().query_all(&select).await? {
        out.push((row.try_get("", "id")?, row.try_get("", "ip_rules")?));
    }
    Ok(out)
}

async fn store(manager: &SchemaManager<'_>, profile: &str, text: String) -> Result<(), DbErr> {
    let update = Query::update()
        .table(id("access_profiles"))
        .value(id("ip_rules"), text)
        .and_where(Expr::col(id("id")).eq(profile))
        .to_owned();
    manager.get_connection().execute(&update).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Migrations have no injected clock: the audit event carries the wall-clock time.
        let at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        for (profile, text) in rows(manager).await? {
            let Rewrite::Change {
                text,
                dropped_allow,
            } = rewrite(&text)
            else {
                continue;
            };
            store(manager, &profile, text).await?;
            if dropped_allow.is_empty() {
                continue;
            }
            // An id shaped like the registry's audit ids (`evt_` + 12 hex digits of
            // milliseconds + 10 base62), its tail taken from the (random) profile id: one
            // event per profile.
            let tail: String = profile
                .chars()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let event = format!("evt_{:012x}{tail}", Ord::max(at.timestamp_millis(), 0));
            let details = json!({"dropped_allow": dropped_allow, "why": WHY}).to_string();
            let insert = Query::insert()
                .into_table(id("audit_events"))
                .columns([
                    id("id"),
                    id("at"),
                    id("actor"),
                    id("action"),
                    id("target_type"),
                    id("target_id"),
                    id("details"),
                ])
                .values([
                    event.into(),
                    at.into(),
                    "system".into(),
                    "profile.ip_rules.migrate".into(),
                    "access_profile".into(),
                    profile.clone().into(),
                    details.into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .to_owned();
            manager.get_connection().execute(&insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (profile, text) in rows(manager).await? {
            if let Some(text) = restore(&text) {
                store(manager, &profile, text).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(text: &str) -> (Value, Vec<Value>) {
        match rewrite(text) {
            Rewrite::Change {
                text,
                dropped_allow,
            } => (
                serde_json::from_str(&text).unwrap_or(Value::Null),
                dropped_allow,
            ),
            Rewrite::Keep => panic!("{text} kept"),
        }
    }

    #[test]
    fn explicit_values_equal_to_the_derived_one_are_dropped() {
        // The old default (allow, no lists): open before, open after.
        assert_eq!(
            changed(r#"{"default_access":"allow","allow":[],"deny":[]}"#),
            (json!({"allow": [], "deny": []}), vec![])
        );
        assert_eq!(
            changed(r#"{"default_access":"allow","allow":[],"deny":["192.0.2.0/24"]}"#),
            (json!({"allow": [], "deny": ["192.0.2.0/24"]}), vec![])
        );
        // deny + allow list: the derived default is deny too.
        assert_eq!(
            changed(r#"{"default_access":"deny","allow":["10.0.0.0/8"],"deny":["10.1.0.0/16"]}"#),
            (
                json!({"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]}),
                vec![]
            )
        );
    }

    #[test]
    fn explicit_deny_without_allow_list_stays() {
        assert_eq!(
            rewrite(r#"{"default_access":"deny","allow":[],"deny":[]}"#),
            Rewrite::Keep
        );
        assert_eq!(
            rewrite(r#"{"default_access":"deny","allow":[],"deny":["192.0.2.1"]}"#),
            Rewrite::Keep
        );
        assert_eq!(rewrite(r#"{"default_access":"deny"}"#), Rewrite::Keep);
    }

    #[test]
    fn an_ineffective_allow_list_is_moved_out_and_allow_stays() {
        let (doc, dropped) = changed(
            r#"{"default_access":"allow","allow":["10.0.0.0/8","192.0.2.7"],"deny":["10.1.0.0/16"]}"#,
        );
        assert_eq!(
            doc,
            json!({"default_access": "allow", "allow": [], "deny": ["10.1.0.0/16"]})
        );
        assert_eq!(dropped, vec![json!("10.0.0.0/8"), json!("192.0.2.7")]);
    }

    #[test]
    fn rows_in_the_new_form_or_unreadable_are_kept() {
        for text in [
            r#"{"allow":["10.0.0.0/8"],"deny":[]}"#,
            r#"{"allow":[],"deny":[]}"#,
            r#"{"default_access":"sometimes","allow":[],"deny":[]}"#,
            "not json",
            "[]",
            "",
        ] {
            assert_eq!(rewrite(text), Rewrite::Keep, "{text}");
        }
    }

    /// The migration runs once; were it run again, it would move nothing more (a moved row's
    /// explicit `allow` would only lose its key, which means `allow` there too).
    #[test]
    fn a_second_pass_moves_nothing() {
        for text in [
            r#"{"default_access":"allow","allow":["10.0.0.0/8"],"deny":[]}"#,
            r#"{"default_access":"deny","allow":["10.0.0.0/8"],"deny":[]}"#,
            r#"{"default_access":"allow","allow":[],"deny":[]}"#,
        ] {
            let Rewrite::Change { text: once, .. } = rewrite(text) else {
                panic!("{text} kept")
            };
            match rewrite(&once) {
                Rewrite::Keep => {}
                Rewrite::Change {
                    text: twice,
                    dropped_allow,
                } => {
                    assert!(dropped_allow.is_empty(), "{text} -> {once} -> {twice}");
                    // Only an explicit `allow` without a list goes, and it comes back as such.
                    // Compared as JSON: key order depends on serde_json's features, which
                    // the workspace build unifies (`preserve_order`).
                    let parse = |t: &str| serde_json::from_str::<Value>(t).ok();
                    assert_eq!(
                        restore(&twice).as_deref().and_then(parse),
                        parse(&once),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn down_spells_the_derived_default_out() {
        let restored = |t: &str| restore(t).map(|s| serde_json::from_str::<Value>(&s).ok());
        assert_eq!(
            restored(r#"{"allow":["10.0.0.0/8"],"deny":[]}"#),
            Some(Some(
                json!({"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": []})
            ))
        );
        assert_eq!(
            restored(r#"{"allow":[],"deny":[]}"#),
            Some(Some(
                json!({"default_access": "allow", "allow": [], "deny": []})
            ))
        );
        assert_eq!(
            restore(r#"{"default_access":"deny","allow":[],"deny":[]}"#),
            None
        );
        assert_eq!(restore("not json"), None);
    }
}
