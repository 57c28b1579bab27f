//! synthpool-core: the DSP core of synthpool, `no_std` and without `alloc`.
//!
//! The same code renders on the host (inside worker processes) and on a Cortex-M4F.
//! Everything is fixed-size: units keep their state in fields and const-generic arrays,
//! the [`rack::Rack`] holds a fixed number of module slots and cables.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod dsp;
pub mod units;

pub use block::{BLOCK, Block};

#[cfg(test)]
pub mod testing;
