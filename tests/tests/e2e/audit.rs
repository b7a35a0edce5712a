//! The audit trail: every admin change is recorded with actor, action and target, and no
//! secret ever appears in it.

use gatehouse_tests::{Value, json, spawn_app, str_field};

fn events_for<'a>(items: &'a [Value], target_id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|e| e["target_id"] == target_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_changes_are_audited_without_secrets() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    app.admin_patch(
        &format!("/collections/{}", fx.collection_id()),
        &json!({"description": "changed"}),
    )
    .await?
    .expect_status(200);
    let rotated = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({}),
        )
        .await?;
    assert!(rotated.status.is_success(), "{rotated:?}");
    let new_secret = str_field(&rotated.json(), "oauth_client_secret")?.to_owned();
    app.record_secret(&new_secret);

    let (items, _) = app.admin_list_all("/audit-events", 1000).await?;
    let reply = app.admin_get("/audit-events").await?.expect_status(200);
    let text = reply.text();
    for s in app.seen_secrets() {
        assert!(!text.contains(&s), "secret {s:.6}… in the audit log");
    }
    for item in &items {
        let t = item.to_string();
        for s in app.seen_secrets() {
            assert!(!t.contains(&s), "secret {s:.6}… in audit event {item}");
        }
        assert!(item["id"].is_string(), "{item}");
        assert!(item["at"].is_string(), "{item}");
        assert!(
            !item["actor"].is_null(),
            "every event names its actor: {item}"
        );
        assert!(
            item["action"].as_str().is_some_and(|a| !a.is_empty()),
            "{item}"
        );
        assert!(
            item["target_type"].as_str().is_some_and(|a| !a.is_empty()),
            "{item}"
        );
    }

    let col = events_for(&items, fx.collection_id());
    assert!(col.len() >= 2, "create + update of the collection: {col:?}");
    let cli = events_for(&items, fx.client_id());
    assert!(!cli.is_empty(), "client creation audited: {items:?}");
    let prf = events_for(&items, fx.profile_id());
    assert!(
        prf.len() >= 2,
        "profile creation + secret rotation audited: {prf:?}"
    );
    let actions: Vec<&str> = col.iter().filter_map(|e| e["action"].as_str()).collect();
    let distinct: std::collections::BTreeSet<&str> = actions.iter().copied().collect();
    assert!(
        distinct.len() >= 2,
        "create and update are different actions: {actions:?}"
    );

    // The actor is the bootstrap admin (by client id or oauth_client_id).
    let actor = col[0]["actor"].to_string();
    let clients = app
        .admin_get("/clients?limit=1000")
        .await?
        .expect_status(200)
        .json();
    let admin_client = clients["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .find(|id| actor.contains(id));
    assert!(
        actor.contains(&app.bootstrap_id) || admin_client.is_some(),
        "actor {actor} should identify the bootstrap admin ({})",
        app.bootstrap_id
    );

    // Reads are not changes.
    let before = items.len();
    app.admin_get(&format!("/collections/{}", fx.collection_id()))
        .await?
        .expect_status(200);
    let (after, _) = app.admin_list_all("/audit-events", 1000).await?;
    assert_eq!(after.len(), before, "a GET wrote an audit event");
    Ok(())
}
