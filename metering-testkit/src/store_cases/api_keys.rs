//! API keys.
//!
//! Cases:
//! - [`api_keys_lookup_revoke_expiry`]

use super::*;

/// Keys are found by hash only, stop working when revoked or expired, and record use.
pub async fn api_keys_lookup_revoke_expiry<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let (engine, clock) = engine(&store);
    let created = engine
        .create_api_key(NewApiKey::new("ingest key", Role::Ingest).for_tenant(ns.tenant("a")))
        .await
        .expect("create");
    assert!(created.secret.starts_with("mk_"));
    let principal = engine
        .authenticate(&created.secret)
        .await
        .expect("authenticate");
    assert_eq!(principal.key.id, created.key.id);
    assert_eq!(principal.key.tenant_id, Some(ns.tenant("a")));
    assert!(matches!(
        engine.authenticate("mk_not-a-key").await,
        Err(Error::Unauthenticated(_))
    ));
    let stored = store
        .api_key_by_hash(&metering_core::KeyHash::of(&created.secret))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(stored.key, created.key);
    assert!(matches!(
        store.insert_api_key(&created.key, &stored.hash).await,
        Err(Error::Conflict(_))
    ));

    engine.flush_key_usage().await.expect("flush");
    let listed = store.list_api_keys().await.expect("list");
    let key = listed
        .iter()
        .find(|k| k.id == created.key.id)
        .expect("listed");
    assert_eq!(key.last_used_at, Some(now()));
    clock.advance(Duration::minutes(5));
    engine
        .authenticate(&created.secret)
        .await
        .expect("authenticate");
    let listed = engine.list_api_keys().await.expect("list");
    let key = listed
        .iter()
        .find(|k| k.id == created.key.id)
        .expect("listed");
    assert_eq!(
        key.last_used_at,
        Some(now() + Duration::minutes(5)),
        "pending uses show before a flush"
    );

    engine.revoke_api_key(created.key.id).await.expect("revoke");
    assert!(matches!(
        engine.authenticate(&created.secret).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        engine.revoke_api_key(ApiKeyId::generate()).await,
        Err(Error::NotFound(_))
    ));

    let expiring = engine
        .create_api_key(
            NewApiKey::new("short", Role::Read).expiring(clock.now() + Duration::hours(1)),
        )
        .await
        .expect("create");
    engine
        .authenticate(&expiring.secret)
        .await
        .expect("still valid");
    clock.advance(Duration::hours(1));
    assert!(matches!(
        engine.authenticate(&expiring.secret).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(
        engine
            .create_api_key(NewApiKey::new("past", Role::Read).expiring(now()))
            .await
            .is_err()
    );
}

use metering_core::Clock as _;
