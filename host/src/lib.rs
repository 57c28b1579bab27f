//! synthpool-host: the std shell around the core.
//!
//! The server: worker processes over one shared memory region ([`shm`], [`pool`],
//! [`worker`]), the audio side ([`audio`]), the OSC side ([`osc`], [`ledger`], [`placement`]),
//! and start-up, the demo and offline rendering ([`server`]); [`supervisor`] replaces workers
//! that die. [`render`] renders a script in
//! one process with one rack: the reference the pool's render is checked against. [`local`] is
//! an engine of in-process racks for tests and the fuzz target; [`wire`] checks OSC framing.
#![deny(unsafe_code)]

pub mod audio;
pub mod engine;
pub mod ledger;
pub mod local;
pub mod osc;
pub mod persist;
pub mod placement;
pub mod pool;
pub mod profile;
pub mod render;
pub mod server;
#[allow(unsafe_code)]
pub mod shm;
pub mod supervisor;
pub mod wire;
pub mod worker;
