//! synthpool-host: the std shell around the core.
//!
//! The server: worker processes over one shared memory region ([`shm`], [`pool`],
//! [`worker`]), the audio side ([`audio`]), the OSC side ([`osc`], [`ledger`], [`placement`]),
//! and start-up, the demo and offline rendering ([`server`]); [`supervisor`] replaces workers
//! that die. [`protocol`] is the replies' vocabulary (`/status`, every `/fail` name), which
//! the server writes and the tests read. [`render`] renders a script in
//! one process with one rack: the reference the pool's render is checked against. [`local`] is
//! an engine of in-process racks for tests and the fuzz target; [`wire`] checks OSC framing.
//! Beside them: [`alloc_count`] (the counter that proves the audio path allocates nothing),
//! [`sched`] (the audio threads' scheduling and float modes), [`clock`] (the monotonic clock
//! every process shares) and [`pid`] (whether a process is alive).
#![deny(unsafe_code)]

pub mod alloc_count;
#[cfg(feature = "server")]
pub mod audio;
pub mod clock;
#[cfg(feature = "server")]
pub mod engine;
#[cfg(feature = "server")]
pub mod feedback;
#[cfg(feature = "server")]
pub mod ledger;
#[cfg(feature = "server")]
pub mod local;
#[cfg(feature = "server")]
pub mod mapping;
#[cfg(feature = "server")]
pub mod osc;
#[cfg(feature = "server")]
pub mod oscquery;
#[cfg(feature = "server")]
pub mod persist;
pub mod pid;
#[cfg(feature = "server")]
pub mod placement;
#[cfg(feature = "server")]
pub mod pool;
#[cfg(feature = "server")]
pub mod profile;
#[cfg(feature = "server")]
pub mod protocol;
#[cfg(feature = "server")]
pub mod render;
pub mod sched;
#[cfg(feature = "server")]
pub mod server;
#[allow(unsafe_code)]
pub mod shm;
#[cfg(feature = "server")]
pub mod supervisor;
#[cfg(feature = "server")]
pub mod wire;
pub mod worker;
