//! The profiler (`synthpool profile`, `cargo xtask profile`): reads a running server's shared
//! region, read-only, and tells how much of the block budget each worker core and each
//! module take.
//!
//! What the workers write (see `worker.rs`): every block, its wake latency and work time into
//! a ring of [`TIMING_SLOTS`]; every [`TIME_MODULES_EVERY`]th block, each module's time into
//! its slot's [`ModuleTiming`]. The profiler maps the region with [`Region::attach_read_only`]
//! (found through `/proc/PID/fd`), polls the rings often enough that none wraps, and sums
//! up: percentiles of block time and wake latency, late blocks, each module's mean time.
//! Nothing it does can reach the audio path: its mapping has no write permission.
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use synthpool_core::BLOCK;
use synthpool_core::module::Kind;

use crate::shm::{self, Control, ModuleTiming, Region, TIMING_SLOTS};
use crate::worker::TIME_MODULES_EVERY;

/// The block budget at `sample_rate_hz`, ns (64 frames at 48 kHz: 1.333 ms).
pub fn budget_ns(sample_rate_hz: u32) -> f64 {
    BLOCK as f64 / f64::from(sample_rate_hz.max(1)) * 1e9
}

/// The `/proc/PID/fd/N` link to process `pid`'s synthpool region (a memfd named
/// `synthpool`; the server, a render and their workers all hold it).
///
/// # Errors
/// `/proc/PID/fd` cannot be read (no such process, another user's) or holds no region.
pub fn find_region(pid: u32) -> io::Result<PathBuf> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == "/memfd:synthpool (deleted)") {
            return Ok(entry.path());
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("process {pid} holds no synthpool region")))
}

/// The value at fraction `p` (0..=1) of `sorted` (nearest rank); 0 for an empty slice.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One rack slot as read: the module word ([`shm::module_word`]), timed blocks, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotReading {
    /// Which module held the slot (0: none).
    pub module: u32,
    /// Timed blocks since it took the slot.
    pub blocks: u32,
    /// Nanoseconds over those blocks.
    pub ns: u64,
}

/// One worker's counters as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct WorkerReading {
    /// Process id.
    pub pid: u32,
    /// Core it pinned itself to (`u32::MAX`: not pinned).
    pub core: u32,
    /// State word ([`shm::READY`] and so on).
    pub state: u32,
    /// Blocks rendered.
    pub blocks: u64,
    /// Blocks the host gave up waiting for.
    pub late_blocks: u64,
    /// Every rack slot.
    pub slots: Vec<SlotReading>,
}

/// The region's counters as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// The block clock.
    pub generation: u32,
    /// Every worker the region was laid out for.
    pub workers: Vec<WorkerReading>,
}

impl Snapshot {
    /// Reads every worker's counters (loads only).
    pub fn read(control: &Control, workers: usize) -> Snapshot {
        let slot = |m: &ModuleTiming| SlotReading {
            module: m.module.load(Ordering::Relaxed),
            blocks: m.blocks.load(Ordering::Relaxed),
            ns: m.ns.load(Ordering::Relaxed),
        };
        Snapshot {
            sample_rate_hz: control.clock.sample_rate_hz.load(Ordering::Relaxed),
            generation: control.clock.generation.load(Ordering::Acquire),
            workers: control.workers[..workers.min(shm::MAX_WORKERS)]
                .iter()
                .map(|w| WorkerReading {
                    pid: w.pid.load(Ordering::Relaxed),
                    core: w.core.load(Ordering::Relaxed),
                    state: w.state.load(Ordering::Relaxed),
                    blocks: w.blocks.load(Ordering::Acquire),
                    late_blocks: w.late_blocks.load(Ordering::Relaxed),
                    slots: w.modules.iter().map(slot).collect(),
                })
                .collect(),
        }
    }
}

/// One block as its worker timed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// The worker's block counter (a multiple of [`TIME_MODULES_EVERY`]: modules timed).
    pub block: u64,
    /// The generation it answered.
    pub generation: u32,
    /// From the host's wake to the worker starting, ns.
    pub wake_ns: u32,
    /// From start to output written, ns.
    pub work_ns: u32,
}

/// Follows a region's timing rings over a while: call [`Recorder::poll`] at least every
/// [`TIMING_SLOTS`] blocks (1.3 s in real time) so no block is missed.
#[derive(Clone, Debug)]
pub struct Recorder {
    first: Snapshot,
    last: Snapshot,
    started: Instant,
    elapsed: Duration,
    /// Per worker, the blocks read so far.
    seen: Vec<u64>,
    /// Per worker, every block read, in order.
    pub blocks: Vec<Vec<BlockRecord>>,
    /// Per worker, blocks that the ring overwrote before they were read.
    pub missed: Vec<u64>,
}

impl Recorder {
    /// Starts following `control`'s `workers`. With `history`, the blocks still in the
    /// rings and the modules' counts since they were created are included (a summary of a
    /// render that has finished); without, only what happens from now on.
    pub fn start(control: &Control, workers: usize, history: bool) -> Recorder {
        let now = Snapshot::read(control, workers);
        let mut first = now.clone();
        let seen = now
            .workers
            .iter()
            .map(|w| if history { w.blocks.saturating_sub(TIMING_SLOTS as u64 - 1) } else { w.blocks })
            .collect();
        if history {
            for w in &mut first.workers {
                w.late_blocks = 0;
                w.slots.fill(SlotReading::default());
            }
        }
        let count = now.workers.len();
        let mut recorder = Recorder {
            first,
            last: now,
            started: Instant::now(),
            elapsed: Duration::ZERO,
            seen,
            blocks: vec![Vec::new(); count],
            missed: vec![0; count],
        };
        if history {
            recorder.poll(control);
        }
        recorder
    }

    /// Reads the blocks rendered since the last poll, and the counters.
    pub fn poll(&mut self, control: &Control) {
        self.last = Snapshot::read(control, self.seen.len());
        for (index, reading) in self.last.workers.iter().enumerate() {
            let w = &control.workers[index];
            let mut next = self.seen[index];
            if reading.blocks.saturating_sub(next) > TIMING_SLOTS as u64 - 1 {
                // Keep one slot of margin: the worker may be writing the next one.
                let from = reading.blocks - (TIMING_SLOTS as u64 - 1);
                self.missed[index] += from - next;
                next = from;
            }
            while next < reading.blocks {
                let t = &w.timing[next as usize % TIMING_SLOTS];
                self.blocks[index].push(BlockRecord {
                    block: next,
                    generation: t.generation.load(Ordering::Relaxed),
                    wake_ns: t.wake_ns.load(Ordering::Relaxed),
                    work_ns: t.work_ns.load(Ordering::Relaxed),
                });
                next += 1;
            }
            self.seen[index] = next;
        }
        self.elapsed = self.started.elapsed();
    }

    /// A recorder that starts where this one is now (for `--live`'s windows).
    pub fn window_from_here(&self) -> Recorder {
        Recorder {
            first: self.last.clone(),
            last: self.last.clone(),
            started: Instant::now(),
            elapsed: Duration::ZERO,
            seen: self.seen.clone(),
            blocks: vec![Vec::new(); self.seen.len()],
            missed: vec![0; self.seen.len()],
        }
    }

    /// Wall time covered, from start to the last poll.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Sample rate of the region, Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.last.sample_rate_hz
    }

    /// Each worker's figures over the recording.
    pub fn summary(&self) -> Vec<WorkerProfile> {
        let budget = budget_ns(self.last.sample_rate_hz);
        // The blocks the recording covers: those of a worker that rendered every one (a
        // worker with nothing to do is not woken, and spends nothing on a block).
        let period = self.blocks.iter().map(Vec::len).max().unwrap_or(0).max(1) as f64;
        self.last
            .workers
            .iter()
            .enumerate()
            .map(|(index, last)| {
                let records = &self.blocks[index];
                let mut work: Vec<u32> = records.iter().map(|r| r.work_ns).collect();
                let mut wake: Vec<u32> = records.iter().map(|r| r.wake_ns).collect();
                work.sort_unstable();
                wake.sort_unstable();
                let timed: Vec<f64> = records
                    .iter()
                    .filter(|r| r.block % TIME_MODULES_EVERY == 0)
                    .map(|r| f64::from(r.work_ns))
                    .collect();
                let mean = |xs: &[f64]| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
                let all: Vec<f64> = work.iter().map(|&x| f64::from(x)).collect();
                let first = self.first.workers.get(index);
                let mut modules: Vec<ModuleShare> = last
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(slot, now)| {
                        let (id, kind) = shm::module_of_word(now.module)?;
                        let before = first.and_then(|f| f.slots.get(slot)).copied().unwrap_or_default();
                        let (blocks, ns) = if before.module == now.module && now.blocks >= before.blocks {
                            (now.blocks - before.blocks, now.ns.saturating_sub(before.ns))
                        } else {
                            (now.blocks, now.ns)
                        };
                        let mean_ns = if blocks == 0 { 0.0 } else { ns as f64 / f64::from(blocks) };
                        Some(ModuleShare { id, kind, worker: index, blocks, mean_ns, share: mean_ns / budget })
                    })
                    .collect();
                modules.sort_by(|a, b| b.mean_ns.total_cmp(&a.mean_ns));
                let us = |ns: u32| f64::from(ns) / 1e3;
                WorkerProfile {
                    index,
                    pid: last.pid,
                    core: last.core,
                    state: last.state,
                    blocks: records.len() as u64,
                    missed: self.missed[index],
                    p50_us: us(percentile(&work, 0.5)),
                    p99_us: us(percentile(&work, 0.99)),
                    max_us: us(work.last().copied().unwrap_or(0)),
                    mean_us: mean(&all) / 1e3,
                    timed_mean_us: mean(&timed) / 1e3,
                    share: all.iter().sum::<f64>() / period / budget,
                    late_blocks: last.late_blocks.saturating_sub(first.map_or(0, |f| f.late_blocks)),
                    wake_p50_us: us(percentile(&wake, 0.5)),
                    wake_p99_us: us(percentile(&wake, 0.99)),
                    modules,
                }
            })
            .collect()
    }
}

/// One module's time, as the profiler read it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModuleShare {
    /// Its id.
    pub id: u16,
    /// Its kind.
    pub kind: Kind,
    /// The worker it lives on.
    pub worker: usize,
    /// Timed blocks the figures come from.
    pub blocks: u32,
    /// Mean time a block, ns.
    pub mean_ns: f64,
    /// Mean share of the block budget, 0..1.
    pub share: f64,
}

/// One worker's figures over a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerProfile {
    /// Its slot.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Its core (`u32::MAX`: not pinned).
    pub core: u32,
    /// Its state word.
    pub state: u32,
    /// Blocks recorded.
    pub blocks: u64,
    /// Blocks the ring overwrote before they were read.
    pub missed: u64,
    /// Block time (wake to output written), median, us.
    pub p50_us: f64,
    /// Block time, 99th percentile, us.
    pub p99_us: f64,
    /// Block time, the longest, us.
    pub max_us: f64,
    /// Block time, mean, us.
    pub mean_us: f64,
    /// Block time, mean over the blocks whose modules were timed, us.
    pub timed_mean_us: f64,
    /// Its work over the recording's budget (every block it covers, rendered or not), 0..1:
    /// a worker that rendered every block and was late in all of them reads above 1.
    pub share: f64,
    /// Blocks the host gave up waiting for during the recording.
    pub late_blocks: u64,
    /// Wake latency (host's wake to the worker starting), median, us.
    pub wake_p50_us: f64,
    /// Wake latency, 99th percentile, us.
    pub wake_p99_us: f64,
    /// Its modules (the output included), most expensive first.
    pub modules: Vec<ModuleShare>,
}

impl WorkerProfile {
    /// Modules users created (the output left out).
    pub fn user_modules(&self) -> usize {
        self.modules.iter().filter(|m| m.kind != Kind::Output).count()
    }
}

/// The table `synthpool profile` prints: one row per worker.
pub fn table(workers: &[WorkerProfile], sample_rate_hz: u32) -> String {
    let budget_us = budget_ns(sample_rate_hz) / 1e3;
    let mut text = format!(
        "worker core  blocks | block us: p50    p99    max | share of {budget_us:.0} us | late | wake us: p50   p99 | modules | top modules (share of the block)\n"
    );
    for w in workers {
        let core = if w.core == u32::MAX { "-".to_owned() } else { w.core.to_string() };
        let top: Vec<String> =
            w.modules.iter().take(3).map(|m| format!("{} {} {:.2}%", m.kind.name(), m.id, 100.0 * m.share)).collect();
        text += &format!(
            "{:>6} {:>4} {:>7} |        {:>6.1} {:>6.1} {:>6.1} | {:>13.1}% | {:>4} |      {:>6.1} {:>5.1} | {:>7} | {}\n",
            w.index,
            core,
            w.blocks,
            w.p50_us,
            w.p99_us,
            w.max_us,
            100.0 * w.share,
            w.late_blocks,
            w.wake_p50_us,
            w.wake_p99_us,
            w.user_modules(),
            top.join(", ")
        );
    }
    text
}

/// Writes the picture: each worker's block time over time with the budget line (the worst
/// block of every 8, so a spike shows however long the run), and a histogram of block times.
///
/// # Errors
/// The file cannot be written.
pub fn write_svg(path: &Path, recorder: &Recorder, workers: &[WorkerProfile]) -> io::Result<()> {
    use plotters::prelude::*;
    let failed = |e: &dyn std::fmt::Display| io::Error::other(format!("drawing {}: {e}", path.display()));
    let rate = recorder.sample_rate_hz().max(1);
    let budget_us = budget_ns(rate) / 1e3;
    let block_s = BLOCK as f64 / f64::from(rate);
    let start = recorder.blocks.iter().filter_map(|b| b.first()).map(|r| r.generation).min().unwrap_or(0);
    let series: Vec<Vec<(f64, f64)>> = recorder
        .blocks
        .iter()
        .map(|records| {
            records
                .chunks(8)
                .map(|c| {
                    let worst = c.iter().map(|r| r.work_ns).max().unwrap_or(0);
                    (f64::from(c[0].generation.wrapping_sub(start)) * block_s, f64::from(worst) / 1e3)
                })
                .collect()
        })
        .collect();
    let seconds = series.iter().flatten().map(|p| p.0).fold(0.0f64, f64::max).max(block_s);
    let top_us = series.iter().flatten().map(|p| p.1).fold(budget_us, f64::max) * 1.1;

    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let (upper, lower) = root.split_vertically(440);
    let mut chart = ChartBuilder::on(&upper)
        .caption("block time per worker (worst of every 8 blocks)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..seconds, 0f64..top_us)
        .map_err(|e| failed(&e))?;
    chart.configure_mesh().x_desc("time, s").y_desc("block time, us").draw().map_err(|e| failed(&e))?;
    for (w, points) in series.iter().enumerate() {
        let color = Palette99::pick(w).to_rgba();
        let core = workers.get(w).map_or(u32::MAX, |p| p.core);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(1)))
            .map_err(|e| failed(&e))?
            .label(format!("worker {w}, core {core}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new([(0.0, budget_us), (seconds, budget_us)], RED.stroke_width(2)))
        .map_err(|e| failed(&e))?
        .label(format!("budget {budget_us:.0} us (64 frames)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;

    // Histogram: 60 bins up to the largest block (or the budget, if none came near it).
    let widest = recorder.blocks.iter().flatten().map(|r| f64::from(r.work_ns) / 1e3).fold(0.0f64, f64::max);
    let span = widest.max(1.0) * 1.02;
    let bins = 60usize;
    let width = span / bins as f64;
    let counts: Vec<Vec<u32>> = recorder
        .blocks
        .iter()
        .map(|records| {
            let mut c = vec![0u32; bins];
            for r in records {
                c[((f64::from(r.work_ns) / 1e3 / width) as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let most = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let mut histogram = ChartBuilder::on(&lower)
        .caption("block time histogram", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..span, 0u32..most + most / 10 + 1)
        .map_err(|e| failed(&e))?;
    histogram
        .configure_mesh()
        .x_desc(format!("block time, us (bins of {width:.1} us)"))
        .y_desc("blocks")
        .draw()
        .map_err(|e| failed(&e))?;
    for (w, c) in counts.iter().enumerate() {
        let color = Palette99::pick(w).to_rgba();
        histogram
            .draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, &n)| {
                Rectangle::new([(b as f64 * width, 0), ((b + 1) as f64 * width, n)], color.mix(0.45).filled())
            }))
            .map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

/// What `synthpool profile` is told.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Workers of the server it starts.
    pub workers: usize,
    /// How long to record, s.
    pub seconds: f64,
    /// The load script the server it starts plays.
    pub script: PathBuf,
    /// Attach to this running server (or render) instead of starting one.
    pub attach: Option<u32>,
    /// Print the table once a second until Ctrl-C.
    pub live: bool,
    /// Where the picture, the table and the started server's state go.
    pub out_dir: PathBuf,
}

/// Runs the profiler; returns the exit code.
pub fn run(options: &ProfileOptions) -> i32 {
    match run_profile(options) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("synthpool profile: {e}");
            1
        }
    }
}

fn run_profile(options: &ProfileOptions) -> io::Result<()> {
    std::fs::create_dir_all(&options.out_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let mut started = None;
    let pid = match options.attach {
        Some(pid) => pid,
        None => {
            let child = start_server(options)?;
            let pid = child.id();
            started = Some(child);
            pid
        }
    };
    let result = record(options, pid, &stop);
    if let Some(mut child) = started {
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = child.wait();
    }
    result
}

fn record(options: &ProfileOptions, pid: u32, stop: &AtomicBool) -> io::Result<()> {
    let link = find_region(pid)?;
    let region = Region::attach_read_only(&link)?;
    let control = region.control();
    println!("synthpool profile: process {pid}, {} workers, region {} (read-only)", region.workers(), link.display());
    let mut whole = Recorder::start(control, region.workers(), false);
    let mut window = whole.window_from_here();
    let until = (!options.live).then(|| Instant::now() + Duration::from_secs_f64(options.seconds));
    let mut last_print = Instant::now();
    // 50 ms: ~40 blocks in real time, far inside the 1024-block rings; fast enough for an
    // offline render's faster clock too.
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        std::thread::sleep(Duration::from_millis(50));
        whole.poll(control);
        window.poll(control);
        if options.live && last_print.elapsed() >= Duration::from_secs(1) {
            // Clear the screen and home the cursor (ANSI): a table that refreshes in place.
            print!("\x1b[2J\x1b[H");
            println!("synthpool profile --live: process {pid}, the last second (Ctrl-C stops)\n");
            print!("{}", table(&window.summary(), window.sample_rate_hz()));
            window = whole.window_from_here();
            last_print = Instant::now();
        }
        if rustix::process::test_kill_process(
            rustix::process::Pid::from_raw(pid as i32)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?,
        )
        .is_err()
        {
            break; // it ended (a render finishing)
        }
    }
    whole.poll(control);
    let summary = whole.summary();
    let text = table(&summary, whole.sample_rate_hz());
    println!("\n{:.1} s recorded:\n", whole.elapsed().as_secs_f64());
    print!("{text}");
    let missed: u64 = whole.missed.iter().sum();
    if missed > 0 {
        println!("({missed} blocks passed unread: the rings wrapped between two polls)");
    }
    std::fs::write(options.out_dir.join("profile.txt"), &text)?;
    let svg = options.out_dir.join("profile.svg");
    write_svg(&svg, &whole, &summary)?;
    println!("picture: {}", svg.display());
    Ok(())
}

/// Starts `synthpool` (this executable) playing the load script into the null sink, with a
/// fresh patch and a state folder under `out_dir`, and waits until it is ready.
fn start_server(options: &ProfileOptions) -> io::Result<Child> {
    let exe = std::env::current_exe()?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = options.out_dir.join("state");
    let mut child = Process::new(exe)
        .args(["--audio", "null", "--fresh", "--port", &port.to_string()])
        .args(["--workers", &options.workers.to_string()])
        .arg("--state")
        .arg(&state)
        .arg("--script")
        .arg(&options.script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ready, from start") => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = child.wait();
                return Err(io::Error::other("the server exited during start-up"));
            }
        }
    }
    // The rest of its output is read and dropped, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    println!(
        "synthpool profile: started synthpool (pid {}) with {} workers playing {}",
        child.id(),
        options.workers,
        options.script.display()
    );
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let xs: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&xs, 0.5), 50);
        assert_eq!(percentile(&xs, 0.99), 99);
        assert_eq!(percentile(&xs, 1.0), 100);
        assert_eq!(percentile(&xs, 0.0), 1);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn module_words_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(shm::module_of_word(shm::module_word(9999, kind)), Some((9999, kind)));
        }
        assert_eq!(shm::module_of_word(0), None);
    }

    #[test]
    fn a_table_has_a_row_per_worker_with_its_top_modules() {
        let vcf = ModuleShare { id: 7, kind: Kind::Vcf, worker: 0, blocks: 10, mean_ns: 2000.0, share: 0.0015 };
        let worker = WorkerProfile {
            index: 0,
            pid: 1,
            core: 1,
            state: shm::READY,
            blocks: 750,
            missed: 0,
            p50_us: 40.0,
            p99_us: 80.0,
            max_us: 200.0,
            mean_us: 42.0,
            timed_mean_us: 45.0,
            share: 0.0315,
            late_blocks: 0,
            wake_p50_us: 20.0,
            wake_p99_us: 70.0,
            modules: vec![vcf],
        };
        let text = table(&[worker.clone(), WorkerProfile { index: 1, ..worker }], 48_000);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("vcf 7 0.15%"), "{text}");
        assert!(text.contains("3.1%"), "{text}");
    }
}
