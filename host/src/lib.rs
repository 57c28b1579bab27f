//! synthpool-host: the std shell around the core.
//!
//! The server: worker processes over one shared memory region ([`shm`], [`pool`],
//! [`worker`]), the audio side ([`audio`]), the OSC side ([`osc`], [`ledger`], [`placement`]),
//! and start-up, the demo and offline rendering ([`server`]). [`render`] renders a script in
//! one process with one rack: the reference the pool's render is checked against.
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
