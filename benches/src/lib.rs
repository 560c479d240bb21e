//! Benchmarks of the metering workspace; see README.md.

pub mod layer;
pub mod workload;
