//! The worker pool: one shared region, worker processes pinned to cores, the block clock.
//!
//! Start-up, in order and timed: lay out the region (every rack cleared in place), launch
//! the `synthpool-worker` processes (they inherit the memfd, map it, pin themselves, claim
//! their rack) and wait until each says ready. Each block, [`Pool::render_block`] bumps the
//! generation word and wakes the workers with one futex call, sleeps on the done word until
//! every worker has published this generation or the deadline passes, and sums what
//! arrived. A worker that misses the deadline costs its own contribution for that block,
//! counted in its `late_blocks`; nobody waits for it.
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use synthpool_core::BLOCK;
use synthpool_core::command::Command;
use synthpool_core::ring::Message;

use crate::engine::{Busy, Engine, WorkerStatus};
use crate::shm::{self, ALL, Region, TIMING_SLOTS};

/// How to build a pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Worker processes.
    pub workers: usize,
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// The `synthpool-worker` executable (default: beside the running executable).
    pub worker_exe: Option<PathBuf>,
}

/// How long each start-up stage took.
#[derive(Clone, Debug, Default)]
pub struct Startup {
    /// Creating, sizing, mapping and laying out the shared region.
    pub region: Duration,
    /// From the first spawn to the last worker ready.
    pub workers_ready: Duration,
    /// Each worker, exec to ready.
    pub per_worker: Vec<Duration>,
    /// Bytes in the shared region.
    pub region_bytes: usize,
}

/// The running pool.
pub struct Pool {
    region: Region,
    children: Mutex<Vec<Child>>,
    cores: Vec<usize>,
    sample_rate_hz: u32,
}

impl Pool {
    /// Lays out the region and starts the workers; returns once all are ready.
    ///
    /// # Errors
    /// The region cannot be created, a worker cannot be started, or one does not report
    /// ready within 5 s.
    pub fn start(config: &PoolConfig) -> io::Result<(Pool, Startup)> {
        let started = Instant::now();
        let region = Region::create(config.workers, config.sample_rate_hz)?;
        shm::inheritable(region.fd())?;
        let region_time = started.elapsed();
        let exe = match &config.worker_exe {
            Some(path) => path.clone(),
            None => default_worker_exe()?,
        };
        let available = core_affinity::get_core_ids().map(|ids| ids.len()).unwrap_or(1).max(1);
        let cores: Vec<usize> = (0..config.workers).map(|i| i % available).collect();
        let mut children = Vec::with_capacity(config.workers);
        let launch = Instant::now();
        let mut spawned_at = Vec::with_capacity(config.workers);
        for (index, &core) in cores.iter().enumerate() {
            spawned_at.push(Instant::now());
            children.push(spawn_worker(&exe, region.raw_fd(), index, core)?);
        }
        let mut per_worker = Vec::with_capacity(config.workers);
        for (index, spawned) in spawned_at.iter().enumerate() {
            let state = &region.control().workers[index].state;
            let give_up = Instant::now() + Duration::from_secs(5);
            while state.load(Ordering::Acquire) != 1 {
                let left = give_up.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    for child in children.iter_mut() {
                        let _ = child.kill();
                    }
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("worker {index} did not start")));
                }
                shm::futex_wait(state, state.load(Ordering::Acquire), Some(left.min(Duration::from_millis(50))));
            }
            per_worker.push(spawned.elapsed());
        }
        let startup =
            Startup { region: region_time, workers_ready: launch.elapsed(), per_worker, region_bytes: region.len() };
        let pool = Pool { region, children: Mutex::new(children), cores, sample_rate_hz: config.sample_rate_hz };
        Ok((pool, startup))
    }

    /// Renders one block: wakes every worker, waits for them until `deadline` from now, sums
    /// their outputs into `out`. Returns how many workers missed the deadline. Allocation-free,
    /// lock-free; its only syscalls are the futex wake and wait.
    pub fn render_block(&self, out: &mut [f32; BLOCK], deadline: Duration) -> usize {
        let control = self.region.control();
        let clock = &control.clock;
        let workers = &control.workers[..self.region.workers()];
        let now = shm::now_ns();
        for worker in workers {
            worker.woken_at_ns.store(now, Ordering::Relaxed);
        }
        let generation = clock.generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        shm::futex_wake(&clock.generation, ALL);
        let end = now + deadline.as_nanos() as u64;
        loop {
            let done = clock.done.load(Ordering::Acquire);
            if workers.iter().all(|w| w.done_generation.load(Ordering::Acquire) == generation) {
                break;
            }
            let t = shm::now_ns();
            if t >= end {
                break;
            }
            shm::futex_wait(&clock.done, done, Some(Duration::from_nanos(end - t)));
        }
        *out = [0.0; BLOCK];
        let mut late = 0;
        for worker in workers {
            if worker.done_generation.load(Ordering::Acquire) == generation {
                for (o, word) in out.iter_mut().zip(&worker.output) {
                    *o += f32::from_bits(word.load(Ordering::Relaxed));
                }
            } else {
                worker.late_blocks.fetch_add(1, Ordering::Relaxed);
                late += 1;
            }
        }
        late
    }

    /// The generation of the block rendered last.
    pub fn generation(&self) -> u32 {
        self.region.control().clock.generation.load(Ordering::Acquire)
    }

    /// Stops the workers and waits for them to exit.
    pub fn stop(&self) {
        let clock = &self.region.control().clock;
        clock.stop.store(1, Ordering::Release);
        clock.generation.fetch_add(1, Ordering::AcqRel);
        shm::futex_wake(&clock.generation, ALL);
        if let Ok(mut children) = self.children.lock() {
            for child in children.iter_mut() {
                let give_up = Instant::now() + Duration::from_secs(2);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            children.clear();
        }
    }

    fn push(&self, worker: usize, command: &Command, not_before: u32) -> Result<(), Busy> {
        let [a, b, c, d] = command.to_words();
        let message: Message = [a, b, c, d, not_before, 0];
        let ring = &self.region.control().workers.get(worker).ok_or(Busy)?.commands;
        ring.try_push(message).map_err(|_| Busy)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Engine for Pool {
    fn workers(&self) -> usize {
        self.region.workers()
    }

    fn send(&self, worker: usize, command: &Command) -> Result<(), Busy> {
        // Due at once: at the next block any worker starts.
        self.push(worker, command, self.generation())
    }

    fn send_together(&self, commands: &[(usize, Command)]) -> Result<(), Busy> {
        // Two blocks ahead: every worker reads the whole bundle at the same block, even if
        // one wakes while the bundle is still being pushed.
        self.send_together_at(commands, self.generation().wrapping_add(2))
    }

    fn send_together_at(&self, commands: &[(usize, Command)], due: u32) -> Result<(), Busy> {
        let control = self.region.control();
        let mut wanted = vec![0usize; self.region.workers()];
        for (worker, _) in commands {
            *wanted.get_mut(*worker).ok_or(Busy)? += 1;
        }
        // One producer (this thread): free room only grows while we push.
        for (worker, &n) in wanted.iter().enumerate() {
            let ring = &control.workers[worker].commands;
            if ring.capacity() - ring.len() < n {
                return Err(Busy);
            }
        }
        for (worker, command) in commands {
            self.push(*worker, command, due)?;
        }
        Ok(())
    }

    fn generation(&self) -> u32 {
        Pool::generation(self)
    }

    fn status(&self) -> Vec<WorkerStatus> {
        let budget_ns = BLOCK as f64 / self.sample_rate_hz as f64 * 1e9;
        let control = self.region.control();
        (0..self.region.workers())
            .map(|index| {
                let w = &control.workers[index];
                let blocks = w.blocks.load(Ordering::Relaxed);
                let recent = blocks.min(64) as usize;
                let mut work: Vec<u32> = (0..recent)
                    .map(|k| {
                        w.timing[(blocks as usize + TIMING_SLOTS - 1 - k) % TIMING_SLOTS]
                            .work_ns
                            .load(Ordering::Relaxed)
                    })
                    .collect();
                work.sort_unstable();
                let median = work.get(work.len() / 2).copied().unwrap_or(0);
                WorkerStatus {
                    pid: w.pid.load(Ordering::Relaxed),
                    core: self.cores.get(index).copied().unwrap_or(0),
                    load: (median as f64 / budget_ns) as f32,
                    late_blocks: w.late_blocks.load(Ordering::Relaxed),
                    blocks,
                }
            })
            .collect()
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }
}

fn spawn_worker(exe: &Path, fd: i32, index: usize, core: usize) -> io::Result<Child> {
    Process::new(exe)
        .args(["--fd", &fd.to_string(), "--index", &index.to_string(), "--core", &core.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", exe.display())))
}

/// `synthpool-worker` beside the running executable (or one directory up, for test binaries
/// in `target/*/deps`).
fn default_worker_exe() -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or_else(|| io::Error::other("executable has no directory"))?;
    for candidate in [dir.join("synthpool-worker"), dir.join("../synthpool-worker")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("synthpool-worker not found beside {}", me.display())))
}
