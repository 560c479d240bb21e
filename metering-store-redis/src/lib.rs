#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod config;
mod connection;
mod error;
mod keys;
mod recovery;
mod scripts;

pub use cache::RedisQuotaCache;
pub use config::RedisConfig;

/// Re-exported so users build clients and connections with the same version.
pub use redis;
