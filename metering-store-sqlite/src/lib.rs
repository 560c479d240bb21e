#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aggregate;
mod alerts;
mod api_keys;
mod codec;
pub mod config;
mod conn;
mod error;
mod events;
mod meter_rollup;
mod meters;
pub mod migrations;
mod quotas;
mod rollup;
mod store;
mod webhooks;

pub use config::{SqliteConfig, Synchronous};
pub use migrations::SCHEMA_VERSION;
pub use store::SqliteStore;

/// Re-exported so users open extra connections with the same version.
pub use rusqlite;
