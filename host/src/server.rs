//! `synthpool` itself: start-up in order (shared region, workers, then OSC and audio), the
//! demo player, offline rendering through the same pool, and a clean stop.
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use synthpool_core::BLOCK;
use synthpool_core::block::{CHANNELS, Generation, STEREO_SILENCE, StereoBlock};
use synthpool_core::script::Player;

use crate::audio::{AudioChoice, AudioStats, Clocked, Output, Recorder};
use crate::engine::{Due, Engine};
use crate::ledger::Ledger;
use crate::persist::{self, Saver, Store};
use crate::pool::{Pool, PoolConfig};
use ipnet::IpNet;

/// The demo patch, also in the repository as demo/demo.osc.
pub const DEMO_SCRIPT: &str = include_str!("../../demo/demo.osc");

/// Everything `synthpool` (the live server) is told on its command line.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Worker processes.
    pub workers: usize,
    /// Output choice.
    pub audio: AudioChoice,
    /// Device id for cpal (`alsa:hw:0,0`, `jack:output`).
    pub device: Option<String>,
    /// Record what is played to this WAV file.
    pub record: Option<PathBuf>,
    /// Play the demo patch.
    pub demo: bool,
    /// Play this script (its text) as the demo plays its own: a load for the profiler.
    pub script: Option<String>,
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Stop after this long (None: until SIGINT or SIGTERM).
    pub seconds: Option<f64>,
    /// Networks allowed to send OSC (empty: anyone who can reach the socket).
    pub allow: Vec<IpNet>,
    /// Where the last patch and the named patches are kept.
    pub state_dir: PathBuf,
    /// Start with an empty patch instead of restoring the last one.
    pub fresh: bool,
    /// Announce the OSC and OSCQuery servers by mDNS (`_osc._udp`, `_oscjson._tcp`).
    pub announce: bool,
}

fn log(stage: &str, took: Duration) {
    println!("synthpool: {stage:<44} {:>8.2} ms", took.as_secs_f64() * 1e3);
}

/// Runs the server until SIGINT, SIGTERM or `options.seconds`; returns the exit code.
pub fn serve(options: &ServeOptions) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("synthpool: cannot watch signal {signal}: {e}");
        }
    }
    let result = serve_until(options, &stop);
    // Whatever happened, the OSC and demo threads see the flag and end.
    stop.store(true, Ordering::Release);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("synthpool: {e}");
            1
        }
    }
}

fn serve_until(options: &ServeOptions, stop: &Arc<AtomicBool>) -> io::Result<()> {
    if options.listen.ip().is_unspecified() {
        eprintln!("synthpool: WARNING: listening on {}: anyone who can reach this machine can play it", options.listen);
    }
    let t = Instant::now();
    let (pool, startup) = Pool::start(&PoolConfig {
        workers: options.workers,
        sample_rate_hz: options.sample_rate_hz,
        worker_exe: None,
        inline: true,
    })?;
    log(
        &format!("shared region ({:.1} MiB, one memfd)", startup.region_bytes as f64 / (1 << 20) as f64),
        startup.region,
    );
    for (i, took) in startup.per_worker.iter().enumerate() {
        log(&format!("worker {i} exec to ready"), *took);
    }
    log(&format!("pool of {} workers ready", options.workers), startup.workers_ready);
    let pool = Arc::new(pool);
    let engine: Arc<dyn Engine> = pool.clone();
    let ledger = Arc::new(Mutex::new(Ledger::new(options.workers)));
    let supervisor = crate::supervisor::spawn(pool.clone(), ledger.clone(), stop.clone())?;

    let store = Store::new(&options.state_dir);
    let played = options.demo || options.script.is_some();
    // A played script (the demo, a load) is not saved over the performer's last patch.
    let saver = if played { None } else { Some(Saver::start(store.clone(), ledger.clone())?) };

    let t_osc = Instant::now();
    let socket = UdpSocket::bind(options.listen)?;
    let local = socket.local_addr()?;
    let mut osc = crate::osc::Server::new(socket, engine.clone(), ledger.clone()).with_allow(options.allow.clone());
    osc = osc.with_store(store.clone(), saver.as_ref().map(Saver::notifier));
    let osc = Arc::new(osc);
    let placement = osc_placement(&pool);
    let osc_thread = {
        let stop = stop.clone();
        let osc = osc.clone();
        std::thread::Builder::new().name("osc".into()).spawn(move || {
            placement.apply();
            osc.run(&stop)
        })?
    };
    log(&format!("OSC listening on udp://{local}, {}", placement.describe()), t_osc.elapsed());
    if !options.allow.is_empty() {
        let nets: Vec<String> = options.allow.iter().map(ToString::to_string).collect();
        println!("synthpool: answering only senders in {}", nets.join(", "));
    }
    // OSCQuery on the same port number over TCP. A port taken on TCP costs discovery, not
    // the server: it is announced and carries on.
    let t_query = Instant::now();
    let query_thread = match TcpListener::bind(local) {
        Ok(listener) => {
            let thread = crate::oscquery::spawn(listener, osc.clone(), local, stop.clone())?;
            log(&format!("OSCQuery on http://{local}/ (the page: http://{local}/?HTML)"), t_query.elapsed());
            Some(thread)
        }
        Err(e) => {
            eprintln!("synthpool: OSCQuery: cannot listen on tcp://{local}: {e}; carrying on without it");
            None
        }
    };
    let _announcer = announce(options.announce && query_thread.is_some(), local);

    // Played for the server's life: leaked once, so the player may borrow it from any thread.
    let script: Option<&'static str> =
        if options.demo { Some(DEMO_SCRIPT) } else { options.script.clone().map(|s| &*Box::leak(s.into_boxed_str())) };
    let demo = match script {
        Some(script) => Some(spawn_demo(pool.clone(), ledger.clone(), stop.clone(), script)?),
        None => None,
    };

    let t_audio = Instant::now();
    let recording = match &options.record {
        Some(path) => Some(Recorder::start(path, options.sample_rate_hz)?),
        None => None,
    };
    let (recorder, producer) = match recording {
        Some((r, p)) => (Some(r), Some(p)),
        None => (None, None),
    };
    let stats = Arc::new(AudioStats::default());
    let period = Duration::from_secs_f64(BLOCK as f64 / options.sample_rate_hz as f64);
    // A worker gets 80% of a block; what is late is dropped for that block, not waited for.
    let source = Clocked::new(pool.clone(), period.mul_f64(0.8), producer, stats.clone());
    let (output, description) =
        match Output::open(options.audio, options.device.as_deref(), options.sample_rate_hz, source) {
            Ok(opened) => opened,
            Err(e) => {
                stop.store(true, Ordering::Release);
                let _ = osc_thread.join();
                pool.stop();
                return Err(e);
            }
        };
    log(&format!("audio: {description}"), t_audio.elapsed());
    if matches!(output, Output::Null { .. }) {
        match &options.record {
            Some(path) => {
                println!("synthpool: no audio device: playing into a null sink; recording to {}", path.display())
            }
            None => println!(
                "synthpool: no audio device: playing into a null sink (add --record FILE.wav to keep what plays)"
            ),
        }
    }
    // The last patch comes back once the audio runs: a patch larger than the command rings
    // then goes in as the workers drain them.
    let t_restore = Instant::now();
    if played {
        println!("synthpool: the script starts from an empty patch (the last patch stays saved)");
    } else if options.fresh {
        println!("synthpool: --fresh: starting from an empty patch");
    } else {
        let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let (restored, problems) = persist::restore(&store, &mut ledger, engine.as_ref());
        for problem in &problems {
            eprintln!("synthpool: restoring {}: {problem}", store.last_path().display());
        }
        if restored > 0 || !problems.is_empty() {
            log(&format!("restored the last patch ({restored} lines)"), t_restore.elapsed());
        }
    }
    log("ready, from start", t.elapsed());

    let until = options.seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    while !stop.load(Ordering::Acquire) && until.is_none_or(|u| Instant::now() < u) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Release);
    drop(output);
    if let Some(demo) = demo {
        let late = demo.join().unwrap_or(0);
        println!("synthpool: demo: {late} blocks' lines queued late");
    }
    let _ = osc_thread.join();
    if let Some(thread) = query_thread {
        let _ = thread.join();
    }
    drop(osc);
    if let Ok(recoveries) = supervisor.join()
        && recoveries.relaunched + recoveries.retired > 0
    {
        println!(
            "synthpool: {} workers replaced ({} racks rebuilt from the ledger), {} retired; slowest replacement {:.2} ms",
            recoveries.relaunched,
            recoveries.rebuilt,
            recoveries.retired,
            recoveries.slowest.as_secs_f64() * 1e3
        );
    }
    pool.stop();
    if let Some(saver) = saver {
        saver.finish();
    }
    if let Some(recorder) = recorder {
        let samples = recorder.finish()?;
        let frames = samples as f64 / CHANNELS as f64;
        println!("synthpool: recorded {:.2} s", frames / options.sample_rate_hz as f64);
    }
    println!(
        "synthpool: stopped after {} blocks ({} late), {} device xruns, {} blocks of audio input missed or dropped",
        stats.blocks.load(Ordering::Relaxed),
        stats.late_blocks.load(Ordering::Relaxed),
        stats.xruns.load(Ordering::Relaxed),
        stats.input_glitches.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Announces the server by mDNS when `wanted` and someone else could reach it (not when it
/// listens on loopback only); the announcement lasts as long as the daemon returned.
fn announce(wanted: bool, local: SocketAddr) -> Option<mdns_sd::ServiceDaemon> {
    if !wanted {
        return None;
    }
    if local.ip().is_loopback() {
        println!("synthpool: not announced by mDNS: listening on {} only (see --bind)", local.ip());
        return None;
    }
    match crate::oscquery::announce(local.ip(), local.port()) {
        Ok(daemon) => {
            println!("synthpool: announced by mDNS as {}", crate::oscquery::SERVICE_TYPES.join(" and "));
            Some(daemon)
        }
        Err(e) => {
            eprintln!("synthpool: cannot announce by mDNS: {e}");
            None
        }
    }
}

/// Where the OSC thread runs: on a core no worker is pinned to when there is one, else on
/// any core at a lower priority, so that a flood of messages never takes a worker's time.
#[derive(Clone, Copy)]
enum OscPlacement {
    Core(usize),
    Nice(i32),
}

fn osc_placement(pool: &Pool) -> OscPlacement {
    match pool.free_core() {
        Some(free) => OscPlacement::Core(free),
        None => OscPlacement::Nice(10),
    }
}

impl OscPlacement {
    fn apply(&self) {
        match *self {
            OscPlacement::Core(id) => {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            OscPlacement::Nice(nice) => {
                if let Err(e) = crate::sched::lower_priority(nice) {
                    eprintln!("synthpool: cannot lower the OSC thread's priority: {e}");
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            OscPlacement::Core(id) => format!("on core {id} (no worker there)"),
            OscPlacement::Nice(nice) => format!("below the workers (nice {nice}: every core has one)"),
        }
    }
}

/// Plays a script (the demo, or `--script`) live: each line is checked by the ledger and queued for the exact
/// block its time names, a little ahead, so live and offline renders agree sample for sample.
/// Call it before the audio starts: the first lookahead's lines are queued before it returns.
fn spawn_demo(
    pool: Arc<Pool>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    script: &'static str,
) -> io::Result<JoinHandle<u64>> {
    let mut demo =
        Demo { first: pool.generation(), player: Player::new(script), block: 0, late_blocks: 0, pool, ledger };
    demo.queue_ahead();
    std::thread::Builder::new().name("demo".into()).spawn(move || {
        while !stop.load(Ordering::Acquire) && !demo.player.finished() {
            demo.queue_ahead();
            std::thread::sleep(Duration::from_millis(10));
        }
        demo.late_blocks
    })
}

/// The demo's position in its script and on the block clock.
struct Demo {
    /// The generation before the demo's first block.
    first: u32,
    player: Player<'static>,
    /// The next block whose lines are not queued yet.
    block: u64,
    /// Blocks whose lines were queued after the block had begun (the live demo then
    /// differs from the offline render from that block on).
    late_blocks: u64,
    pool: Arc<Pool>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Demo {
    /// 0.5 s at 48 kHz: beyond the stalls of a loaded machine, far below the rings' capacity
    /// (the demo queues a few hundred commands a second).
    const LOOKAHEAD_BLOCKS: u64 = 375;

    fn queue_ahead(&mut self) {
        let played = self.pool.generation().wrapping_sub(self.first) as u64;
        while self.block <= played + Self::LOOKAHEAD_BLOCKS {
            let due = self.first.wrapping_add(self.block as u32 + 1);
            let rendered = self.pool.generation();
            if Generation(rendered).reached(Generation(due)) {
                self.late_blocks += 1; // its lines reach the workers after their block
            }
            // Pushed under the ledger's lock: the OSC thread pushes under it too, so each ring
            // keeps one producer at a time.
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            queue_due_lines(&mut self.player, &mut ledger, &self.pool, self.block, due, |number, why| {
                eprintln!("synthpool: demo line {number}: {why}")
            });
            self.block += 1;
        }
    }
}

/// What an offline render did.
#[derive(Clone, Debug, Default)]
pub struct RenderReport {
    /// The script lines refused, for the user.
    pub refused: Vec<String>,
    /// Blocks rendered.
    pub blocks: u64,
    /// Heap allocations and frees made on the audio path (the rendering thread's block loop
    /// and every worker's): 0 and 0 unless something is wrong.
    pub allocations: (u64, u64),
}

/// Renders `script` for `seconds` through a pool of `workers`, as fast as the CPU allows, and
/// writes `out`. Lines apply at the same blocks as live; `/map` lines are skipped.
///
/// # Errors
/// The pool cannot start or the file cannot be written.
pub fn render(
    script: &str,
    seconds: f64,
    sample_rate_hz: u32,
    workers: usize,
    input: Option<&Path>,
    out: &Path,
) -> io::Result<RenderReport> {
    let input = match input {
        Some(path) => crate::render::read_input_wav(path, sample_rate_hz)?,
        None => Vec::new(),
    };
    let (pool, _) = Pool::start(&PoolConfig { workers, sample_rate_hz, worker_exe: None, inline: true })?;
    let before = crate::alloc_count::counted_allocations();
    // A saved patch's mappings wait for controllers: offline there are none.
    let script = crate::mapping::without_maps(script);
    let (samples, refused) = render_on_audio_thread(&pool, &script, seconds, &input, false)?;
    let after = crate::alloc_count::counted_allocations();
    let (mut allocations, mut frees) = (after.0 - before.0, after.1 - before.1);
    for w in 0..Engine::workers(&pool) {
        let (a, f) = pool.worker_allocations(w);
        allocations += a;
        frees += f;
    }
    crate::render::write_wav(out, &samples, sample_rate_hz).map_err(io::Error::other)?;
    let blocks = (samples.len() / (BLOCK * CHANNELS)) as u64;
    Ok(RenderReport { refused, blocks, allocations: (allocations, frees) })
}

/// How often [`render_balanced`] evens out its workers' loads, blocks: twice the window a
/// load is measured over (64 blocks), so each step sees the last one's effect.
pub const BALANCE_EVERY_BLOCKS: u64 = 128;

/// As [`render_with`], evening out the workers' loads as it plays, whatever the loads (a
/// live server waits for a quarter of the budget: [`crate::placement::BALANCE_FROM`]): the
/// benchmarks' way of building a patch as it would settle on a loaded server. Moves depend
/// on measured times, so the output is not the same bit for bit from run to run.
///
/// # Errors
/// A worker died during the render.
pub fn render_balanced(pool: &Pool, script: &str, seconds: f64) -> io::Result<(Vec<f32>, Vec<String>)> {
    render_on_audio_thread(pool, script, seconds, &[], true)
}

/// The render loop, for an already started pool (whose generation is where it starts), with
/// silence as the audio input; the samples are interleaved stereo.
///
/// # Errors
/// A worker died during the render.
pub fn render_with(pool: &Pool, script: &str, seconds: f64) -> io::Result<(Vec<f32>, Vec<String>)> {
    render_on_audio_thread(pool, script, seconds, &[], false)
}

fn render_on_audio_thread(
    pool: &Pool,
    script: &str,
    seconds: f64,
    input: &[StereoBlock],
    balance: bool,
) -> io::Result<(Vec<f32>, Vec<String>)> {
    // The render loop is the offline audio thread, set up as the live one is
    // (`Pool::enter_audio_thread`: real-time above the workers, on a core of its own if any).
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("render".into())
            .spawn_scoped(scope, || {
                pool.enter_audio_thread();
                render_loop(pool, script, seconds, input, balance)
            })?
            .join()
            .map_err(|_| io::Error::other("the render thread panicked"))?
    })
}

fn render_loop(
    pool: &Pool,
    script: &str,
    seconds: f64,
    input: &[StereoBlock],
    balance: bool,
) -> io::Result<(Vec<f32>, Vec<String>)> {
    let rate = Engine::sample_rate_hz(pool);
    let mut ledger = Ledger::new(Engine::workers(pool));
    let mut player = Player::new(script);
    let blocks = (seconds * rate as f64 / BLOCK as f64).ceil() as u64;
    let mut samples = Vec::with_capacity(blocks as usize * BLOCK * CHANNELS);
    let mut refused = Vec::new();
    let mut block_out = STEREO_SILENCE;
    let first = pool.generation();
    for block in 0..blocks {
        let due = first.wrapping_add(block as u32 + 1);
        queue_due_lines(&mut player, &mut ledger, pool, block, due, |number, why| {
            refused.push(format!("line {number}: {why}"))
        });
        // Loads are measured over the last 64 blocks: every 128, the workers are evened out.
        if balance && block % BALANCE_EVERY_BLOCKS == BALANCE_EVERY_BLOCKS - 1 {
            let next = Due::block(due.wrapping_add(1));
            ledger.balance_with(&pool.loads(), 0.0, |commands| pool.send_together_at(commands, next));
        }
        pool.set_input(input.get(block as usize).unwrap_or(&STEREO_SILENCE));
        // Offline: wait as long as it takes (no deadline to meet).
        if pool.render_block(&mut block_out, Duration::from_secs(10)) > 0
            && let Some(death) = pool.wait_for_death(Duration::ZERO)
        {
            // Offline there is no supervisor: a render missing a worker's share is wrong.
            return Err(io::Error::other(format!("worker {} died during the render: {}", death.index, death.how)));
        }
        crate::render::append_interleaved(&block_out, &mut samples);
    }
    Ok((samples, refused))
}

/// Checks the lines of `player` due before block `block` against `ledger` and queues their
/// commands on `pool` for generation `due` (the demo and offline rendering share this);
/// `on_refused(line number, why)` hears of each refused line, which changed nothing.
fn queue_due_lines(
    player: &mut Player<'_>,
    ledger: &mut Ledger,
    pool: &Pool,
    block: u64,
    due: u32,
    mut on_refused: impl FnMut(usize, String),
) {
    let rate = Engine::sample_rate_hz(pool) as f32;
    while let Some(line) = player.next_due_for_block(block, rate) {
        let outcome = line.map_err(|e| (e.number, e.error.to_string())).and_then(|line| {
            let result =
                ledger.submit_with(&[line.request], |commands| pool.send_together_at(commands, Due::block(due)));
            result.map_err(|e| (line.number, format!("{e:?}")))
        });
        if let Err((number, why)) = outcome {
            on_refused(number, why);
        }
    }
}
