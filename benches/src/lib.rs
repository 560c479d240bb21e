//! Benchmarks of the metering workspace; see README.md.

pub mod layer;
pub mod workload;

/// The `p`-th percentile (0.0 to 1.0) of sorted latencies, nearest rank; zero when empty.
#[must_use]
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let last = sorted.len() - 1;
    // Index of the p-th percentile; the float-to-index conversion is bounded by `last`.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((last as f64) * p).round() as usize;
    sorted[i.min(last)]
}
