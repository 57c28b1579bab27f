//! What the OSC side needs from the audio side: a way to hand commands to a worker, and
//! figures for `/status`. The pool implements it; tests can implement it with a fake.
use std::time::Duration;

use synthpool_core::BLOCK;
use synthpool_core::command::WorkerCommand;

/// A worker's command ring was full: the command was not queued (reply `/fail busy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// One worker as `/status` reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStatus {
    /// Process id of the worker process.
    pub pid: u32,
    /// CPU core it is pinned to.
    pub core: usize,
    /// Median share of the block budget its last blocks took, 0.0..=1.0 (and above when late).
    pub load: f32,
    /// Blocks it did not finish by the deadline.
    pub late_blocks: u64,
    /// Blocks in which another worker waiting for a cable's block from this one gave up
    /// (this one was late with it, or died): that input took silence.
    pub late_links: u64,
    /// Blocks it rendered.
    pub blocks: u64,
    /// Its state word: 0 starting, 1 running, 2 exited, 3 dead (being replaced), 4 retired.
    pub state: u32,
    /// Replacements launched for its slot.
    pub restarts: u32,
    /// Heap allocations it made while rendering (0 unless something is wrong).
    pub allocations: u64,
    /// Heap frees it made while rendering.
    pub frees: u64,
    /// Block time (wake to output written) over its recent blocks (up to 1023, 1.36 s at
    /// 48 kHz): median, us.
    pub block_p50_us: f32,
    /// Block time, 99th percentile, us.
    pub block_p99_us: f32,
    /// Block time, the longest, us.
    pub block_max_us: f32,
    /// Wake latency (the host's wake to the worker starting) over the same blocks: median, us.
    pub wake_p50_us: f32,
    /// Wake latency, 99th percentile, us.
    pub wake_p99_us: f32,
    /// The host's audio thread renders this worker's rack itself; its process stands by.
    pub inline: bool,
}

/// One module's time as its worker measured it (every [`crate::worker::TIME_MODULES_EVERY`]th
/// block), since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModuleTime {
    /// Mean time a block, ns.
    pub mean_ns: f64,
    /// Timed blocks the mean comes from (0: not timed yet).
    pub blocks: u32,
}

/// When a bundle's commands apply: with the block of generation `generation`, and, for a
/// timetagged bundle, timed to its sample `frame` (0..BLOCK: an adsr's gate opens or closes
/// there and a vco's frequency steps there, every other change starts with the block; see
/// `Rack::apply_at`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The block's generation.
    pub generation: u32,
    /// The sample within the block a timetag names; None for an untimed change.
    pub frame: Option<u8>,
}

impl Due {
    /// With the block of `generation`, untimed.
    pub fn block(generation: u32) -> Self {
        Self { generation, frame: None }
    }

    /// At sample `frame` of the block of `generation`.
    pub fn sample(generation: u32, frame: u8) -> Self {
        Self { generation, frame: Some(frame) }
    }
}

/// The audio side, as the control side sees it.
pub trait Engine: Send + Sync {
    /// Number of workers.
    fn workers(&self) -> usize;
    /// Queues `command` for `worker`; it applies at that worker's next block. Only one
    /// thread sends (the OSC thread): the rings are single-producer.
    ///
    /// # Errors
    /// [`Busy`] when the worker's ring is full.
    fn send(&self, worker: usize, command: &WorkerCommand) -> Result<(), Busy>;
    /// Queues `commands` so that they all apply in the same block (a bundle): all or none.
    ///
    /// # Errors
    /// [`Busy`] when any ring lacks room for its share; then none was queued.
    fn send_together(&self, commands: &[(usize, WorkerCommand)]) -> Result<(), Busy>;
    /// Queues `commands` to apply together at `due` (or at the next block if its block has
    /// passed): scripts and timetagged bundles. Engines without a clock apply them at once.
    ///
    /// # Errors
    /// As [`Engine::send_together`].
    fn send_together_at(&self, commands: &[(usize, WorkerCommand)], due: Due) -> Result<(), Busy> {
        let _ = due;
        self.send_together(commands)
    }
    /// The block and sample that play `ahead` from now, on the audio side's clock, no sooner
    /// than a bundle can be queued whole (two blocks ahead). Engines without a clock: the
    /// block nearest `ahead` after those two.
    fn due_in(&self, ahead: Duration) -> Due {
        let blocks = ahead.as_secs_f64() * f64::from(self.sample_rate_hz()) / BLOCK as f64;
        Due::sample(self.generation().wrapping_add(2).wrapping_add(blocks.round() as u32), 0)
    }
    /// The generation of the block rendered last (0 before the first).
    fn generation(&self) -> u32 {
        0
    }
    /// Each worker's load (as [`WorkerStatus::load`]), cheaper than the whole status: asked
    /// for whenever a module is placed.
    fn loads(&self) -> Vec<f32> {
        self.status().iter().map(|s| s.load).collect()
    }
    /// Per-worker figures for `/status`.
    fn status(&self) -> Vec<WorkerStatus>;
    /// Module `id`'s time on `worker`, for `/module/stats`; None where nothing times modules
    /// (engines without workers) or the module has no slot there.
    fn module_time(&self, worker: usize, id: u16) -> Option<ModuleTime> {
        let _ = (worker, id);
        None
    }
    /// Sample rate, Hz.
    fn sample_rate_hz(&self) -> u32;
}
