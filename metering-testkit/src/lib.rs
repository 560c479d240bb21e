//! # metering-testkit
//!
//! The one conformance suite that every [`Store`](metering_core::Store) and
//! [`QuotaCache`](metering_core::QuotaCache) implementation runs unchanged, plus the helpers
//! that find the test servers.
//!
//! A backend's `tests/conformance.rs` holds only a `setup` function and one macro call:
//!
//! ```text
//! async fn setup() -> Option<MyStore> {
//!     let url = metering_testkit::postgres_url()?;   // None (and a SKIPPED line) when unset
//!     Some(MyStore::connect(&url).await.expect("the configured server must work"))
//! }
//! metering_testkit::store_conformance!(setup);
//! ```
//!
//! `setup` is called once per case and must return a fresh, isolated store (its own
//! database file, PostgreSQL schema or key prefix), so cases run in parallel.
//!
//! The cases live in [`store_cases`] and [`cache_cases`], one public async function each;
//! the macros expand to one `#[tokio::test]` per case.

pub mod cache_cases;
pub mod env;
pub mod fixtures;
pub mod private;
pub mod recount;
pub mod store_cases;

pub use env::{postgres_url, redis_url};

/// Expands to one `#[tokio::test]` per store conformance case, each calling `$setup()` for a
/// fresh store (`async fn() -> Option<S>` with `S: Store + Clone`). A `None` store skips.
#[macro_export]
macro_rules! store_conformance {
    ($setup:path) => {
        $crate::store_conformance!(@cases $setup;
            insert_and_list_round_trip,
            duplicate_ids_count_once,
            concurrent_overlapping_batches_insert_each_id_once,
            invalid_batch_writes_nothing,
            filters_select_exactly,
            time_ranges_are_half_open,
            listing_order_is_newest_first_ties_by_id,
            numbered_pages_cover_everything_once,
            page_totals_equal_a_recount,
            cursor_walk_returns_each_event_once,
            aggregates_match_recount_for_every_window_and_grouping,
            aggregates_across_dst_changes,
            aggregate_range_edges_inside_buckets,
            exact_decimal_sums,
            late_events_land_in_their_own_window,
            sum_usage_scopes_and_windows,
            quota_upsert_list_delete,
            records_are_found_by_id,
            quota_matching_and_periods,
            validate_sees_every_acknowledged_event,
            consume_is_atomic_under_concurrency,
            consume_through_two_engines_never_exceeds_limit,
            consume_retry_with_same_id_counts_once,
            api_keys_lookup_revoke_expiry,
            the_last_active_admin_key_is_kept,
            concurrent_revocations_keep_an_admin,
            aggregates_match_recount_property,
            meters_define_replace_list_delete,
            meters_count_events_stored_before_them,
            meter_values_are_exact,
            meters_match_recount_property,
            unique_counts_by_whole_windows,
            meter_quotas_follow_their_meter,
            meter_consume_is_exact,
            unique_count_quota_allows_counted_values,
            meter_consume_is_atomic_under_concurrency,
            void_stops_counting_everywhere,
            amend_replaces_in_one_step,
            concurrent_corrections_apply_once,
            corrections_reach_quota_usage_through_the_cache,
            corrections_match_recount_property,
            webhooks_register_list_delete,
            quota_thresholds_round_trip,
            alerts_fire_once_per_period_and_mark,
            refused_checks_and_meter_quotas_alert,
            concurrent_writes_place_each_mark_once,
            deliveries_are_leased_finished_and_retried,
            old_alerts_are_pruned,
            amends_that_raise_usage_alert,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $setup().await else {
                    println!("SKIPPED {}: backend not configured", stringify!($case));
                    return;
                };
                $crate::store_cases::$case(store).await;
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per quota cache conformance case, each calling `$setup()`
/// for a fresh cache (`async fn() -> Option<C>` with `C: QuotaCache + Clone`).
///
/// `cache_conformance!(in_sequence $make)`, used inside an async test, instead runs every case
/// one after the other, each with the cache the expression `$make` evaluates to (it may
/// `.await`): for a backend the test has to start itself, such as a private Redis Cluster.
#[macro_export]
macro_rules! cache_conformance {
    ($setup:path) => {
        $crate::__cache_cases!(@tests $setup;);
    };
    (in_sequence $make:expr) => {
        $crate::__cache_cases!(@in_sequence $make;);
    };
    (@tests $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(cache) = $setup().await else {
                    println!("SKIPPED {}: backend not configured", stringify!($case));
                    return;
                };
                $crate::cache_cases::$case(cache).await;
            }
        )*
    };
    (@in_sequence $make:expr; $($case:ident),* $(,)?) => {
        $(
            println!("cache conformance: {}", stringify!($case));
            $crate::cache_cases::$case($make).await;
        )*
    };
}

/// The quota cache conformance cases, handed to `cache_conformance!` (one list for both
/// forms).
#[doc(hidden)]
#[macro_export]
macro_rules! __cache_cases {
    ($($form:tt)*) => {
        $crate::cache_conformance!($($form)*
            missing_counter_is_absent,
            rebuild_stores_the_counter,
            busy_stream_refuses_rebuild,
            ingest_during_rebuild_discards_it,
            end_ingest_bumps_only_matching_counters,
            duplicates_are_not_counted,
            forget_drops_the_counter,
            counters_are_exact_decimals,
            engine_counters_equal_recount_under_races,
            consume_through_cache_is_atomic,
            corrections_drop_the_streams_counters,
            corrections_reach_checks,
        );
    };
}
