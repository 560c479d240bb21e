//! # metering-store-redis
//!
//! Part of the `metering` workspace. This crate is not implemented yet: it exposes no API.
