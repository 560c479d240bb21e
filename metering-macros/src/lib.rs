//! # metering-macros
//!
//! Part of the `metering` workspace. The `#[meter]` attribute is not implemented yet: this
//! crate exposes no macro.
