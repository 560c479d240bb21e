//! The planner's properties, over random ranges, window cuts and level sets: (a) the pieces
//! are disjoint, half-open and cover the range exactly; (b) bucket pieces are aligned to
//! their level; (c) no piece of a window crosses a cut, and no joined bucket does; (d) joining
//! keeps coverage and joins only adjacent pieces of one kind; (e) raw pieces appear only where
//! a bound is off the finest size.

use proptest::prelude::*;

use super::*;

/// Whether `t` is a range bound or a cut that is off the finest size.
fn unaligned_bound(t: i64, start: i64, end: i64, cuts: &[i64], finest: i64) -> bool {
    t.rem_euclid(finest) != 0 && (t == start || t == end || cuts.contains(&t))
}

fn sizes_strategy() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => (1i64..=40, prop::collection::vec(2i64..=6, 0..4)).prop_map(|(base, factors)| {
            let mut sizes = vec![base];
            for f in factors {
                let last = *sizes.last().expect("one size at least");
                sizes.push(last * f);
            }
            sizes
        }),
    ]
}

/// Every property of a plan of `[start, end)` cut at `cuts` (ascending, distinct) over `sizes`.
fn plan_properties(sizes: &[i64], start: i64, end: i64, cuts: &[i64]) -> Result<(), TestCaseError> {
    let levels = BucketSizes::new(sizes);
    let inside = |t: i64, s: i64, e: i64| s < t && t < e;

    let windows = cut(start, end, cuts, levels);
    let merged = plan(start, end, cuts, levels);
    // (a), (b)
    covers(&windows, start, end, levels)?;
    covers(&merged, start, end, levels)?;
    // (c) Before joining no piece crosses a cut; after it no bucket does.
    for p in &windows {
        if cuts.iter().any(|&c| inside(c, p.start(), p.end())) {
            return Err(fail("a piece crosses a cut", &windows));
        }
    }
    for p in &merged {
        if let Some(level) = p.level() {
            let size = sizes[level];
            if cuts
                .iter()
                .any(|&c| inside(c, p.start(), p.end()) && c.rem_euclid(size) != 0)
            {
                return Err(fail("a bucket crosses a cut", &merged));
            }
        }
    }
    // (d) Each joined piece is a run of adjacent pieces of its kind, and runs are maximal.
    prop_assert_eq!(merged.clone(), merge(windows.clone()));
    let mut rest = windows.iter();
    for m in &merged {
        let mut at = m.start();
        while at < m.end() {
            let p = rest.next().ok_or_else(|| fail("pieces missing", &merged))?;
            prop_assert_eq!(p.start(), at);
            prop_assert_eq!(p.level(), m.level());
            at = p.end();
        }
        prop_assert_eq!(at, m.end());
    }
    prop_assert!(rest.next().is_none());
    for pair in merged.windows(2) {
        prop_assert!(
            pair[0].level() != pair[1].level(),
            "not joined: {:?}",
            merged
        );
    }
    // (e) Raw pieces only where a bound is off the finest size: a raw piece of a window
    // holds no whole finest bucket and starts or ends at such a bound; after joining,
    // every finest bucket a raw piece touches holds such a bound inside.
    if let Some(&finest) = sizes.first() {
        for p in windows.iter().filter(|p| p.level().is_none()) {
            let (s, e) = (p.start(), p.end());
            prop_assert!(
                bucket_end_from(s, finest) >= bucket_start(e, finest),
                "{:?}",
                windows
            );
            prop_assert!(
                unaligned_bound(s, start, end, cuts, finest)
                    || unaligned_bound(e, start, end, cuts, finest),
                "{:?}",
                windows
            );
        }
        for p in merged.iter().filter(|p| p.level().is_none()) {
            let mut bucket = bucket_start(p.start(), finest);
            while bucket < p.end() {
                let has_bound = [start, end]
                    .iter()
                    .chain(cuts)
                    .any(|&t| inside(t, bucket, bucket + finest));
                prop_assert!(has_bound, "raw bucket at {}: {:?}", bucket, merged);
                bucket += finest;
            }
        }
    } else {
        prop_assert!(merged.iter().all(|p| p.level().is_none()));
    }
    Ok(())
}

/// `raw` sorted and deduplicated, each snapped to a level of `sizes` when its selector says
/// so (real window starts mostly are aligned).
fn snap_cuts(raw: &[(i64, usize)], sizes: &[i64]) -> Vec<i64> {
    let mut cuts: Vec<i64> = raw
        .iter()
        .map(
            |&(t, snap)| match snap.checked_sub(1).and_then(|l| sizes.get(l)) {
                Some(&size) => bucket_start(t, size),
                None => t,
            },
        )
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random level sets on a small scale, so that ranges span many buckets of each level.
    #[test]
    fn plans_over_any_levels_are_exact_aligned_and_respect_cuts(
        sizes in sizes_strategy(),
        start in -20_000i64..20_000,
        len in -100i64..30_000,
        raw_cuts in prop::collection::vec((-25_000i64..55_000, 0usize..5), 0..12),
    ) {
        let cuts = snap_cuts(&raw_cuts, &sizes);
        plan_properties(&sizes, start, start + len, &cuts)?;
    }

    /// The levels of the SQLite and PostgreSQL stores over real spans: up to 60 days around
    /// the epoch, with bounds and cuts on days, hours, quarters, minutes, seconds or any
    /// microsecond.
    #[test]
    fn plans_over_store_levels_are_exact_aligned_and_respect_cuts(
        three in any::<bool>(),
        times in prop::collection::vec((-30 * DAY..30 * DAY, 0usize..6), 2..14),
    ) {
        let sizes = if three { THREE } else { TWO }.as_slice();
        let grains = [1, 1_000_000, MIN, QUARTER, HOUR, DAY];
        let times: Vec<(i64, usize)> = times
            .iter()
            .map(|&(t, grain)| (bucket_start(t, grains[grain]), 0))
            .collect();
        let (a, b) = (times[0].0, times[1].0);
        let cuts = snap_cuts(&times[2..], sizes);
        plan_properties(sizes, a.min(b), a.max(b), &cuts)?;
    }
}
