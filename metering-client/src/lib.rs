#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod delivery;
mod error;
#[cfg(feature = "tower")]
mod metered;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod middleware;
pub mod recorder;
mod sink;
mod spill;
mod stats;
mod wire;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use client::{Delivery, FlushReport, MeteringClient};
pub use config::{ClientConfig, OverflowPolicy, TransportMode};
pub use error::ClientError;
pub use recorder::{
    NoopRecorder, Recorder, SetRecorderError, installed_recorder, record, recorder, set_recorder,
};
pub use stats::ClientStats;

/// Re-exported: the event type recorders take.
pub use metering_core::NewEvent;
