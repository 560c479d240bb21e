//! API keys.
//!
//! Cases:
//! - [`api_keys_lookup_revoke_expiry`]
//! - [`the_last_active_admin_key_is_kept`]
//! - [`concurrent_revocations_keep_an_admin`]

use metering_core::LastAdmin;

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

    engine
        .revoke_api_key(created.key.id, LastAdmin::Keep)
        .await
        .expect("revoke");
    assert!(matches!(
        engine.authenticate(&created.secret).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        engine
            .revoke_api_key(ApiKeyId::generate(), LastAdmin::Keep)
            .await,
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

/// Revoking the last active admin key is refused (nothing changes) unless allowed; expired
/// and revoked admin keys do not count, other roles never block.
pub async fn the_last_active_admin_key_is_kept<S: Store + Clone>(store: S) {
    let (engine, clock) = engine(&store);
    let first = engine
        .create_api_key(NewApiKey::new("first admin", Role::Admin))
        .await
        .expect("create");
    let reader = engine
        .create_api_key(NewApiKey::new("reader", Role::Read))
        .await
        .expect("create");
    let expiring = engine
        .create_api_key(
            NewApiKey::new("expiring admin", Role::Admin)
                .expiring(clock.now() + Duration::hours(1)),
        )
        .await
        .expect("create");
    clock.advance(Duration::hours(2));
    // The expiring admin key no longer counts: `first` is the last active one.
    let refused = engine.revoke_api_key(first.key.id, LastAdmin::Keep).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    engine
        .authenticate(&first.secret)
        .await
        .expect("a refused revocation changes nothing");
    // Other keys, and keys that are not active admins, are revoked as usual.
    engine
        .revoke_api_key(reader.key.id, LastAdmin::Keep)
        .await
        .expect("revoke a reader");
    engine
        .revoke_api_key(expiring.key.id, LastAdmin::Keep)
        .await
        .expect("revoke an expired admin");
    let second = engine
        .create_api_key(NewApiKey::new("second admin", Role::Admin))
        .await
        .expect("create");
    engine
        .revoke_api_key(first.key.id, LastAdmin::Keep)
        .await
        .expect("another admin is active");
    assert!(matches!(
        engine.revoke_api_key(second.key.id, LastAdmin::Keep).await,
        Err(Error::Conflict(_))
    ));
    // Revoking a revoked key stays a no-op, also for the last admin's predecessor.
    engine
        .revoke_api_key(first.key.id, LastAdmin::Keep)
        .await
        .expect("revoked already");
    engine
        .revoke_api_key(second.key.id, LastAdmin::Allow)
        .await
        .expect("forced");
    assert!(matches!(
        engine.authenticate(&second.secret).await,
        Err(Error::Unauthenticated(_))
    ));
}

/// Two admins revoking each other's keys at once, through separate engines: one succeeds,
/// one is refused, and an admin key stays active.
pub async fn concurrent_revocations_keep_an_admin<S: Store + Clone>(store: S) {
    for round in 0..10 {
        let (one, _) = engine(&store);
        let (two, _) = engine(&store);
        let a = one
            .create_api_key(NewApiKey::new(format!("a{round}"), Role::Admin))
            .await
            .expect("create");
        let b = one
            .create_api_key(NewApiKey::new(format!("b{round}"), Role::Admin))
            .await
            .expect("create");
        // Only these two are active admins now: earlier rounds left one each, revoke it.
        for key in store.list_api_keys().await.expect("list") {
            if key.id != a.key.id && key.id != b.key.id {
                one.revoke_api_key(key.id, LastAdmin::Allow)
                    .await
                    .expect("clear");
            }
        }
        let (ra, rb) = tokio::join!(
            one.revoke_api_key(a.key.id, LastAdmin::Keep),
            two.revoke_api_key(b.key.id, LastAdmin::Keep)
        );
        let refused = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(Error::Conflict(_))))
            .count();
        assert_eq!(refused, 1, "round {round}: {ra:?} {rb:?}");
        assert!(ra.is_ok() || rb.is_ok());
        let active = store
            .list_api_keys()
            .await
            .expect("list")
            .into_iter()
            .filter(|k| k.role == Role::Admin && k.is_active(now()))
            .count();
        assert_eq!(active, 1, "round {round}");
    }
}
