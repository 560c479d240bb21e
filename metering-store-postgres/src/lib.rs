#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aggregate;
mod alerts;
mod api_keys;
mod config;
mod corrections;
mod error;
mod events;
mod meter_rollup;
mod meters;
mod migrations;
mod quotas;
mod retention;
mod rollup;
mod store;
mod webhooks;

pub use config::PostgresConfig;
pub use retention::RetentionReport;
pub use store::PostgresStore;

/// Re-exported so users build pools and options with the same version.
pub use sqlx;
