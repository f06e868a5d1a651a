//! The atomics the protocol is written with: std's, or loom's when the crate
//! is built with `--cfg loom` for model checking (see `ring::loom_tests`).
#![deny(unsafe_code)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
