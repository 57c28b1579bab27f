//! An [`Engine`] in this process: one [`HostRack`] per worker in ordinary memory, each command
//! applied to its rack as it is sent, a block rendered when asked.
//!
//! No shared memory, no worker processes, no clock. The OSC server's property tests and its
//! fuzz target (`host/fuzz`) drive [`crate::osc::Server::handle`] over it, so that every
//! command the ledger lets through really reaches a rack and a block is rendered with it: a
//! fake that only records commands cannot show that.
use crate::engine::{Busy, Engine, WorkerStatus};
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use synthpool_core::Block;
use synthpool_core::block::{STEREO_SILENCE, StereoBlock};
use synthpool_core::command::WorkerCommand;
use synthpool_core::rack::{HostRack, Links, Untimed};

/// Stack of the thread that builds the racks, bytes: `HostRack::new` makes its 31.9 MB value
/// before it is boxed, which a test thread's 2 MiB stack cannot hold.
const BUILDER_STACK: usize = crate::render::RACK_BUILDER_STACK;

/// A small patch the property tests and the fuzz target start every case from, so that
/// edits find modules and cables to hit: a vco, a filter, an lfo on the pitch, a delay.
pub const SAMPLE_PATCH: &[&str] = &[
    "/module/new vco 1",
    "/module/new vcf 2",
    "/module/new lfo 3",
    "/module/new delay 4",
    "/patch 1 out 2 in",
    "/patch 3 out 1 pitch",
    "/patch 2 out 4 in",
    "/patch 4 out 0 in",
];

/// Workers as in-process racks; see the module's documentation.
pub struct LocalEngine {
    racks: Mutex<Vec<Box<HostRack>>>,
    sample_rate_hz: u32,
    generation: AtomicU32,
}

impl LocalEngine {
    /// `workers` empty racks (0 is taken as 1) prepared for `sample_rate_hz`.
    ///
    /// # Errors
    /// The thread that builds the racks could not be started or failed.
    pub fn new(workers: usize, sample_rate_hz: u32) -> io::Result<Self> {
        let build = move || {
            (0..workers.max(1))
                .map(|_| {
                    let mut rack = Box::new(HostRack::new());
                    rack.prepare(sample_rate_hz as f32);
                    rack
                })
                .collect::<Vec<_>>()
        };
        let racks = std::thread::Builder::new()
            .name("local-racks".into())
            .stack_size(BUILDER_STACK)
            .spawn(build)?
            .join()
            .map_err(|_| io::Error::other("building the racks failed"))?;
        Ok(Self { racks: Mutex::new(racks), sample_rate_hz, generation: AtomicU32::new(0) })
    }

    /// Renders one block on every rack and returns their sum (the host's mix); the
    /// generation advances by one.
    pub fn render(&self) -> StereoBlock {
        let mut sum = STEREO_SILENCE;
        let mut block = STEREO_SILENCE;
        // Racks render in turn: a receive finds what a rack before it sent this block, else
        // silence (as a worker whose sender is late).
        let mut links = Table::default();
        for rack in self.racks.lock().unwrap_or_else(PoisonError::into_inner).iter_mut() {
            rack.process_linked(&mut block, &mut Untimed, &mut links);
            for (s, x) in sum.as_flattened_mut().iter_mut().zip(block.as_flattened()) {
                *s += x;
            }
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        sum
    }

    /// Empties every rack (the output module alone, at its defaults) and sets the
    /// generation back to 0: a fresh engine without building 31.9 MB per rack again.
    pub fn reset(&self) {
        for rack in self.racks.lock().unwrap_or_else(PoisonError::into_inner).iter_mut() {
            rack.clear_in_place(self.sample_rate_hz as f32);
        }
        self.generation.store(0, Ordering::Relaxed);
    }

    /// Per worker, the modules (the output included) and cables its rack holds, ghosts
    /// fading out not counted.
    pub fn counts(&self) -> Vec<(usize, usize)> {
        let racks = self.racks.lock().unwrap_or_else(PoisonError::into_inner);
        racks.iter().map(|r| (r.module_count(), r.cable_count())).collect()
    }
}

/// Link channels between racks rendered in turn on one thread.
#[derive(Default)]
struct Table {
    blocks: std::collections::BTreeMap<u16, Block>,
}

impl Links for Table {
    fn send(&mut self, channel: u16, block: &Block) {
        self.blocks.insert(channel, *block);
    }

    fn receive(&mut self, channel: u16, block: &mut Block) -> bool {
        self.blocks.get(&channel).map(|b| *block = *b).is_some()
    }
}

impl Engine for LocalEngine {
    fn workers(&self) -> usize {
        self.racks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn send(&self, worker: usize, command: &WorkerCommand) -> Result<(), Busy> {
        self.send_together(&[(worker, *command)])
    }

    /// Applies each command to its worker's rack at once, in order; a command for a worker
    /// that does not exist is [`Busy`], and then none is applied.
    fn send_together(&self, commands: &[(usize, WorkerCommand)]) -> Result<(), Busy> {
        let mut racks = self.racks.lock().unwrap_or_else(PoisonError::into_inner);
        if commands.iter().any(|&(w, _)| w >= racks.len()) {
            return Err(Busy);
        }
        // A move's handovers, as the workers make them through their outboxes.
        let mut handed = Vec::new();
        for &(worker, command) in commands {
            match command {
                WorkerCommand::Export { id, slot } => {
                    if let Some(module) = racks[worker].module(id) {
                        handed.push(((worker, slot), module.clone()));
                    }
                    racks[worker].leave(id);
                }
                WorkerCommand::Import { id, from, slot } => {
                    if let Some((_, module)) = handed.iter().find(|(at, _)| *at == (from as usize, slot)) {
                        racks[worker].adopt(id, module);
                    }
                }
                WorkerCommand::Rack(command) => racks[worker].apply(&command),
            }
        }
        Ok(())
    }

    fn generation(&self) -> u32 {
        self.generation.load(Ordering::Relaxed)
    }

    fn status(&self) -> Vec<WorkerStatus> {
        let blocks = u64::from(self.generation());
        (0..self.workers())
            .map(|core| WorkerStatus { pid: std::process::id(), core, blocks, state: 1, ..WorkerStatus::default() })
            .collect()
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }
}
