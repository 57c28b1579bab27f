//! synthpool-host: the std shell around the core.
//!
//! The server: worker processes over one shared memory region ([`shm`], [`pool`],
//! [`worker`]), the audio side ([`audio`]), the OSC side ([`osc`], [`ledger`], [`placement`]),
//! and start-up, the demo and offline rendering ([`server`]); [`supervisor`] replaces workers
//! that die. [`render`] renders a script in
//! one process with one rack: the reference the pool's render is checked against. [`local`] is
//! an engine of in-process racks for tests and the fuzz target; [`wire`] checks OSC framing.
#![deny(unsafe_code)]

#[cfg(feature = "server")]
pub mod audio;
#[cfg(feature = "server")]
pub mod engine;
#[cfg(feature = "server")]
pub mod ledger;
#[cfg(feature = "server")]
pub mod local;
#[cfg(feature = "server")]
pub mod osc;
#[cfg(feature = "server")]
pub mod persist;
#[cfg(feature = "server")]
pub mod placement;
#[cfg(feature = "server")]
pub mod pool;
#[cfg(feature = "server")]
pub mod profile;
#[cfg(feature = "server")]
pub mod render;
#[cfg(feature = "server")]
pub mod server;
#[allow(unsafe_code)]
pub mod shm;
#[cfg(feature = "server")]
pub mod supervisor;
#[cfg(feature = "server")]
pub mod wire;
pub mod worker;
