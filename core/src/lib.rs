//! synthpool-core: the DSP core of synthpool, `no_std` and without `alloc`.
//!
//! The same code renders on the host (inside worker processes) and on a Cortex-M4F.
//! Everything is fixed-size: units keep their state in fields and const-generic arrays,
//! the [`rack::Rack`] holds a fixed number of module slots and cables.
//!
//! The path of an edit: a [`command::Request`] (names, from OSC or a script line) is checked
//! and resolved by a [`topology::Topology`] into a [`command::Command`] (indices), which a
//! [`rack::Rack`] applies between blocks without any way to fail.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod checksum;
pub mod command;
pub mod describe;
pub mod dsp;
pub mod measure;
pub mod module;
pub mod rack;
pub mod ring;
pub mod script;
pub mod topology;
pub mod units;

pub use block::{BLOCK, Block, Generation};

#[cfg(test)]
pub mod testing;
