#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod compact;
mod config;
mod error;
mod ingest;
mod plan;
mod read;
mod retention;
mod store;

pub use config::PostgresConfig;
pub use retention::RetentionReport;
pub use store::PostgresStore;

/// Re-exported so users build pools and options with the same version.
pub use sqlx;
