//! tasks crate.
