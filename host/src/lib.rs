//! synthpool-host: the std shell around the core.
//!
//! For now it renders patch scripts offline in one process ([`render`]); the server (worker
//! processes over shared memory, OSC in, audio out) grows here next.
#![deny(unsafe_code)]

pub mod audio;
pub mod engine;
pub mod ledger;
pub mod osc;
pub mod placement;
pub mod pool;
pub mod render;
pub mod server;
#[allow(unsafe_code)]
pub mod shm;
pub mod worker;
