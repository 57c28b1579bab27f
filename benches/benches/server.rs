//! The server's figures, beside the Python prototype's (issue 3's table): worker cold start,
//! pool ready, command hand-off over UDP, 2-worker speed-up, memory per idle worker, and the
//! pool's own cost per block. Start-up and memory are not per-iteration micro-benchmarks, so
//! this is a plain harness: it repeats each measurement, prints medians and p99, and writes
//! `target/server-bench.json` for `cargo xtask bench` to put into BENCHMARKS.md.
//!
//! `cargo bench -p synthpool-benches --bench server` (it builds the release `synthpool-worker`
//! first). In `cargo test --benches` mode (`--bench` absent) it runs each measurement once,
//! small, to prove it works.
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType, decoder, encoder};
use synthpool_core::BLOCK;
use synthpool_host::engine::Engine;
use synthpool_host::ledger::Ledger;
use synthpool_host::pool::{Pool, PoolConfig};
use synthpool_host::server::{render_balanced, render_with};

const FS: u32 = 48_000;
const BUDGET_US: f64 = 64.0 / 48_000.0 * 1e6;

/// The worker `SYNTHPOOL_WORKER` names (`cargo xtask bench`: the statically linked one),
/// else the `synthpool-worker` of this profile, built now.
fn worker_exe(profile: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(synthpool_host::pool::WORKER_ENV) {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--quiet", "-p", "synthpool-host", "--bin", "synthpool-worker"];
    if profile == "release" {
        args.push("--release");
    }
    let status = Command::new(cargo).args(&args).current_dir(&root).status().expect("cargo runs");
    assert!(status.success(), "building synthpool-worker failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    target.join(profile).join("synthpool-worker")
}

fn start(workers: usize, exe: &Path) -> (Pool, synthpool_host::pool::Startup) {
    start_with(workers, exe, true)
}

/// A pool whose audio thread renders worker 0's rack itself (`inline`), or not.
fn start_with(workers: usize, exe: &Path, inline: bool) -> (Pool, synthpool_host::pool::Startup) {
    Pool::start(&PoolConfig { workers, sample_rate_hz: FS, worker_exe: Some(exe.to_path_buf()), inline })
        .expect("pool starts")
}

/// `line` (`/address arg ...`, as a script line) as an OSC datagram: ints, floats, the
/// rest strings.
fn osc_line(line: &str) -> Vec<u8> {
    let mut words = line.split_whitespace();
    let addr = words.next().expect("an address").to_owned();
    let args = words
        .map(|w| {
            w.parse::<i32>()
                .map(OscType::Int)
                .or_else(|_| w.parse::<f32>().map(OscType::Float))
                .unwrap_or_else(|_| OscType::String(w.into()))
        })
        .collect();
    encoder::encode(&OscPacket::Message(OscMessage { addr, args })).expect("encode")
}

/// CPU time of this process (every thread) and of `pool`'s worker processes, ns.
fn cpu_ns(pool: &Pool) -> u64 {
    let workers: u64 = pool.status().iter().filter_map(|w| synthpool_host::clock::cpu_ns_of(w.pid)).sum();
    synthpool_host::clock::process_cpu_ns() + workers
}

/// CPU time per sample of light patches rendered offline through a pool of one worker,
/// with the audio thread rendering the lane itself and with the worker process doing it
/// (the hand-off every block), against the rack alone in this thread (the criterion
/// benches' rack and script), in `rounds` alternating turns of `seconds`. Returns, per
/// patch, the medians in ns per sample: (rack alone, inline, processes only).
fn light(exe: &Path, patches: &[(&str, String)], seconds: f64, rounds: usize) -> Vec<(f64, f64, f64)> {
    let samples = (seconds * FS as f64 / BLOCK as f64).ceil() * BLOCK as f64;
    patches
        .iter()
        .map(|(name, script)| {
            let mut rack = synthpool_benches::rack_playing(script);
            let pools: Vec<Pool> = [true, false]
                .into_iter()
                .map(|inline| {
                    let (pool, _) = start_with(1, exe, inline);
                    let (_, refused) = render_with(&pool, script, 0.2).expect("build the patch");
                    assert!(refused.is_empty(), "{name}: {refused:?}");
                    pool
                })
                .collect();
            let mut took = [Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..rounds {
                let t = synthpool_host::clock::process_cpu_ns();
                let out = synthpool_benches::render(&mut rack, seconds as f32);
                took[0].push((synthpool_host::clock::process_cpu_ns() - t) as f64 / samples);
                assert!(out.iter().any(|&s| s != 0.0), "{name} plays alone");
                for (pool, took) in pools.iter().zip(&mut took[1..]) {
                    let t = cpu_ns(pool);
                    let (out, _) = render_with(pool, "", seconds).expect("render");
                    took.push((cpu_ns(pool) - t) as f64 / samples);
                    assert!(out.iter().any(|&s| s != 0.0), "{name} plays through the pool");
                }
            }
            let [alone, inline, processes] = took.map(|t| stats_us(t).0);
            (alone, inline, processes)
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn stats_us(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// A patch of `voices` standard voices, each its own component (placement spreads them).
fn voices(voices: usize) -> String {
    let mut s = String::new();
    synthpool_core::script::write_voice_script(voices, &mut s).expect("writes");
    s
}

/// Sends `/module/set 1 level 0.5` to `server` as fast as one thread can for `seconds`, while
/// another counts the replies; returns (answered per s, sent per s, RSS change in KiB).
fn flood(server: std::net::SocketAddr, seconds: f64) -> (f64, f64, i64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let args = vec![OscType::Int(1), OscType::String("level".into()), OscType::Float(0.5)];
    let bytes = encoder::encode(&OscPacket::Message(OscMessage { addr: "/module/set".into(), args })).expect("encode");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let answered = Arc::new(AtomicU64::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    let reader = {
        let (socket, answered, sending) = (socket.try_clone().expect("clone"), answered.clone(), sending.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut quiet = 0;
            while sending.load(Ordering::Relaxed) || quiet < 2 {
                match socket.recv_from(&mut buf) {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        quiet = 0;
                    }
                    Err(_) => quiet += 1,
                }
            }
        })
    };
    let rss_before = smaps_kib(std::process::id(), "Rss") as i64;
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            let _ = socket.send_to(&bytes, server);
        }
        sent += 64;
    }
    let took = t.elapsed().as_secs_f64();
    sending.store(false, Ordering::Relaxed);
    let _ = reader.join();
    let rss_after = smaps_kib(std::process::id(), "Rss") as i64;
    (answered.load(Ordering::Relaxed) as f64 / took, sent as f64 / took, rss_after - rss_before)
}

fn smaps_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The machine's CPU time so far, all cores, in clock ticks: (every state, stolen by the
/// hypervisor), from /proc/stat's first line ((0, 0) where there is none).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).take(8).filter_map(|n| n.parse().ok()).collect();
    (fields.iter().sum(), fields.get(7).copied().unwrap_or(0))
}

/// Builds `script` on a pool of 1 and of 2 workers, then renders `seconds` on each in
/// `rounds` alternating turns; returns the median ratio of 1-worker to 2-worker time with the
/// first and third quartiles, and the median block time of each, us. It prints every round's
/// ratio and the share of the machine's CPU time the hypervisor stole meanwhile: the rounds
/// of one run spread widely on these VMs, and that tells whether a neighbour did it.
fn speedup(exe: &Path, script: &str, seconds: f64, rounds: usize) -> ((f64, f64, f64), f64, f64) {
    let settle_s = if rounds > 1 { 2.0 } else { 0.05 };
    let pools: Vec<Pool> = [1, 2]
        .into_iter()
        .map(|workers| {
            let (pool, _) = start(workers, exe);
            // Built, then played long enough for the render to even out the workers' loads
            // (a step every 128 blocks: 2 s is 11 steps), as a live server would while it plays.
            let (_, refused) = render_balanced(&pool, script, settle_s).expect("build the patch");
            assert!(refused.is_empty(), "{} lines refused, the first {:?}", refused.len(), refused.first());
            pool
        })
        .collect();
    let mut took = [Vec::new(), Vec::new()];
    let ticks = cpu_ticks();
    for _ in 0..rounds {
        for (pool, took) in pools.iter().zip(&mut took) {
            let t = Instant::now();
            let (out, _) = render_with(pool, "", seconds).expect("render");
            took.push(t.elapsed().as_secs_f64());
            assert!(out.iter().any(|&s| s != 0.0));
        }
    }
    for pool in &pools {
        let status = pool.status();
        let work: Vec<String> = status
            .iter()
            .zip(pool.loads())
            .map(|(s, load)| format!("{:.0} us ({:.0} own)", s.block_p50_us, load as f64 * BUDGET_US))
            .collect();
        println!("  {} worker(s), block time (median) per worker: {}", status.len(), work.join(", "));
    }
    let (all, stolen) = cpu_ticks();
    let steal = (stolen - ticks.1) as f64 / (all - ticks.0).max(1) as f64;
    drop(pools);
    let mut ratios: Vec<f64> = took[0].iter().zip(&took[1]).map(|(one, two)| one / two).collect();
    let in_turn: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!("  rounds in turn: {}; CPU time stolen meanwhile: {:.1}%", in_turn.join(" "), 100.0 * steal);
    ratios.sort_by(f64::total_cmp);
    let blocks = seconds * FS as f64 / BLOCK as f64;
    let block_us = |t: &[f64]| stats_us(t.iter().map(|s| s / blocks * 1e6).collect()).0;
    let quartiles = (percentile(&ratios, 0.5), percentile(&ratios, 0.25), percentile(&ratios, 0.75));
    (quartiles, block_us(&took[0]), block_us(&took[1]))
}

/// Issue 12's figures: the 2-worker speed-up on heavy patches, and the light patches' cost
/// through the pool against the rack alone.
fn speedups(exe: &Path, full: bool, json: &mut Vec<String>) {
    // Speed-up of 2 workers over 1 on heavy patches, built first, then rendered offline as fast
    // as the CPU allows (the timed part renders only: the patch is already there). Both pools
    // are built first, then rendered in turns (1 worker, 2 workers, 1, 2 ...), so both see the
    // same moments of this shared machine; the figure is the median of the rounds' ratios.
    // Independent voices: 800 standard voices (3,200 modules), each its own component. The
    // shared bus: N voices, each also into one delay -> reverb (one component; the voices on
    // the other worker reach the delay through a link).
    // 21 rounds of 0.5 s (7 of 1 s before): the same time, in shorter turns, so a burst of
    // the machine's noise spoils fewer of them and the median sits in more.
    let (seconds, rounds) = if full { (0.5, 21) } else { (0.05, 1) };
    let heavy_voices = if full { 800 } else { 60 };
    let (ratio, block_1, block_2) = speedup(exe, &voices(heavy_voices), seconds, rounds);
    println!(
        "independent voices ({heavy_voices}), {rounds} rounds of {seconds} s offline: 1 worker {block_1:.0} us a \
         block, 2 workers {block_2:.0} us: speed-up {:.2}x (quartiles {:.2}-{:.2}x)",
        ratio.0, ratio.1, ratio.2
    );
    json.push(format!(
        "\"speedup_2_over_1\": {:.3}, \"speedup_quartiles\": [{:.3}, {:.3}], \"rounds\": {rounds}, \
         \"block_1_us\": {block_1:.1}, \"block_2_us\": {block_2:.1}, \"heavy_voices\": {heavy_voices}",
        ratio.0, ratio.1, ratio.2
    ));
    // Light patches: what one voice with effects, and 64 voices, cost through the pool
    // offline, against the rack alone (issue 12: within 2x, and 1.3x).
    let (light_s, light_rounds) = if full { (10.0, 7) } else { (0.1, 1) };
    let patches = [("fx", synthpool_benches::fx_script()), ("voices64", synthpool_benches::voice_script(64))];
    for ((name, _), (alone, inline, processes)) in patches.iter().zip(light(exe, &patches, light_s, light_rounds)) {
        println!(
            "light patch {name}, 1 worker, {light_rounds} rounds of {light_s} s offline, CPU per sample: rack alone \
             {alone:.1} ns, audio thread rendering the lane {inline:.1} ns ({:.2}x), worker process {processes:.1} ns \
             ({:.2}x)",
            inline / alone,
            processes / alone
        );
        json.push(format!("\"light_{name}_ns\": [{alone:.2}, {inline:.2}, {processes:.2}]"));
    }
    let bus_sizes: &[usize] = if full { &[400, 800] } else { &[30] };
    for &n in bus_sizes {
        let mut script = String::new();
        synthpool_core::script::write_bus_script(n, &mut script).expect("writes");
        let (ratio, block_1, block_2) = speedup(exe, &script, seconds, rounds);
        println!(
            "shared bus ({n} voices -> delay -> reverb), {rounds} rounds of {seconds} s offline: 1 worker \
             {block_1:.0} us a block, 2 workers {block_2:.0} us: speed-up {:.2}x (quartiles {:.2}-{:.2}x)",
            ratio.0, ratio.1, ratio.2
        );
        json.push(format!(
            "\"bus_{n}_speedup\": {:.3}, \"bus_{n}_quartiles\": [{:.3}, {:.3}], \"bus_{n}_block_1_us\": {block_1:.1}, \
             \"bus_{n}_block_2_us\": {block_2:.1}",
            ratio.0, ratio.1, ratio.2
        ));
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let exe = worker_exe(if full { "release" } else { "debug" });
    let reps = if full { 40 } else { 2 };
    let mut json = Vec::new();
    // `-- speedup`: the issue-12 figures alone (for comparing builds); nothing is written.
    if std::env::args().skip(1).any(|a| a == "speedup") {
        speedups(&exe, full, &mut json);
        return;
    }

    // Worker cold start and pool ready.
    let (mut cold, mut ready) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (pool, startup) = start(2, &exe);
        cold.extend(startup.per_worker.iter().map(|d| d.as_secs_f64() * 1e6));
        ready.push((startup.region + startup.workers_ready).as_secs_f64() * 1e6);
        drop(pool);
    }
    let (cold_p50, cold_p99) = stats_us(cold);
    let (ready_p50, ready_p99) = stats_us(ready);
    println!("worker cold start (exec to ready): median {cold_p50:.0} us, p99 {cold_p99:.0} us");
    println!("pool of 2 ready (region + workers): median {ready_p50:.0} us, p99 {ready_p99:.0} us");
    json.push(format!("\"cold_start_us\": [{cold_p50:.1}, {cold_p99:.1}]"));
    json.push(format!("\"pool2_ready_us\": [{ready_p50:.1}, {ready_p99:.1}]"));

    // Memory per idle worker, and the pool's own cost per block with idle workers.
    let (pool, _) = start(2, &exe);
    let mut block = synthpool_core::block::STEREO_SILENCE;
    for _ in 0..200 {
        pool.render_block(&mut block, Duration::from_secs(1));
    }
    let status = pool.status();
    let rss: Vec<u64> = status.iter().map(|w| smaps_kib(w.pid, "Rss:")).collect();
    let private: Vec<u64> =
        status.iter().map(|w| smaps_kib(w.pid, "Private_Clean:") + smaps_kib(w.pid, "Private_Dirty:")).collect();
    let (rss_max, private_max) = (rss.iter().max().copied().unwrap_or(0), private.iter().max().copied().unwrap_or(0));
    println!("idle worker memory: RSS {rss:?} KiB, private {private:?} KiB");
    json.push(format!("\"idle_rss_kib\": {rss_max}, \"idle_private_kib\": {private_max}"));
    let blocks = if full { 20_000 } else { 100 };
    let mut per_block = Vec::with_capacity(blocks);
    let mut late = 0;
    for _ in 0..blocks {
        let t = Instant::now();
        late += pool.render_block(&mut block, Duration::from_millis(100));
        per_block.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (wake_p50, wake_p99) = stats_us(per_block);
    println!(
        "pool overhead per block, 2 idle workers: median {wake_p50:.1} us ({:.1}% of the block), p99 {wake_p99:.1} us ({:.1}%), {late} late",
        100.0 * wake_p50 / BUDGET_US,
        100.0 * wake_p99 / BUDGET_US
    );
    json.push(format!("\"block_overhead_us\": [{wake_p50:.2}, {wake_p99:.2}]"));

    // Command hand-off: a datagram in, validated, queued on a worker's ring, /done out; timed
    // from the client as a UDP round trip on loopback (an upper bound of the server's part).
    let pool = Arc::new(pool);
    let engine: Arc<dyn Engine> = pool.clone();
    let ledger = Arc::new(Mutex::new(Ledger::new(2)));
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let server_addr = socket.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let osc = {
        let (engine, ledger, stop) = (engine.clone(), ledger.clone(), stop.clone());
        std::thread::spawn(move || synthpool_host::osc::Server::new(socket, engine, ledger).run(&stop))
    };
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    client.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let ask = |addr: &str, args: Vec<OscType>| {
        let bytes = encoder::encode(&OscPacket::Message(OscMessage { addr: addr.into(), args })).expect("encode");
        client.send_to(&bytes, server_addr).expect("send");
        let mut buf = [0u8; 1024];
        let (n, _) = client.recv_from(&mut buf).expect("reply");
        match decoder::decode_udp(&buf[..n]).expect("decode").1 {
            OscPacket::Message(m) => m.addr,
            OscPacket::Bundle(_) => String::new(),
        }
    };
    assert_eq!(ask("/module/new", vec![OscType::String("vco".into()), OscType::Int(1)]), "/done");
    // The audio side keeps draining the ring meanwhile, as it would live.
    let running = Arc::new(AtomicBool::new(true));
    let audio = {
        let (pool, running) = (pool.clone(), running.clone());
        std::thread::spawn(move || {
            let mut block = synthpool_core::block::STEREO_SILENCE;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                pool.render_block(&mut block, Duration::from_millis(100));
                std::thread::sleep(Duration::from_micros(1333));
            }
        })
    };
    let trips = if full { 5_000 } else { 50 };
    let mut rtt = Vec::with_capacity(trips);
    for k in 0..trips {
        let freq = 200.0 + (k % 100) as f32;
        let t = Instant::now();
        let reply = ask("/module/set", vec![OscType::Int(1), OscType::String("freq".into()), OscType::Float(freq)]);
        rtt.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(reply, "/done");
    }
    let (rtt_p50, rtt_p99) = stats_us(rtt);
    println!("command hand-off, UDP round trip /module/set -> /done: median {rtt_p50:.1} us, p99 {rtt_p99:.1} us");
    json.push(format!("\"handoff_rtt_us\": [{rtt_p50:.1}, {rtt_p99:.1}]"));

    // The server's own part of the hand-off, as the issue defines it: a datagram in hand to
    // its command queued and its reply sent (what `Server::run` does after `recv_from`
    // returns). The round trip above adds two thread wakes, which on an idle VM cost tens of us.
    let inside =
        synthpool_host::osc::Server::new(UdpSocket::bind("127.0.0.1:0").expect("bind"), engine.clone(), ledger.clone());
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_nonblocking(true).expect("nonblocking");
    let sink_addr = sink.local_addr().expect("addr");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let mut served = Vec::with_capacity(trips);
    let mut drain = [0u8; 512];
    for k in 0..trips {
        let args = vec![OscType::Int(1), OscType::String("freq".into()), OscType::Float(200.0 + (k % 100) as f32)];
        let bytes =
            encoder::encode(&OscPacket::Message(OscMessage { addr: "/module/set".into(), args })).expect("encode");
        let t = Instant::now();
        for reply in inside.handle(&bytes) {
            let out = encoder::encode(&OscPacket::Message(reply)).expect("encode");
            sender.send_to(&out, sink_addr).expect("send");
        }
        served.push(t.elapsed().as_secs_f64() * 1e6);
        while sink.recv_from(&mut drain).is_ok() {}
    }
    let (in_p50, in_p99) = stats_us(served);
    println!(
        "command hand-off, in the server (datagram to queued and /done sent): median {in_p50:.1} us, p99 {in_p99:.1} us"
    );
    json.push(format!("\"handoff_server_us\": [{in_p50:.1}, {in_p99:.1}]"));

    // Edits stay cheap as the patch grows (issue 12): `/module/new` (then `/module/free`, not
    // timed) handled in the server into a patch of 10 modules, then of 1,000 (standard
    // voices, patched), the audio side draining the rings meanwhile.
    let edits = if full { 2_000 } else { 20 };
    let new_us = |inside: &synthpool_host::osc::Server| {
        let mut took = Vec::with_capacity(edits);
        for _ in 0..edits {
            let t = Instant::now();
            let replies = inside.handle(&osc_line("/module/new vco 9999"));
            took.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(replies.first().map(|r| r.addr.as_str()), Some("/done"));
            assert_eq!(inside.handle(&osc_line("/module/free 9999")).first().map(|r| r.addr.as_str()), Some("/done"));
        }
        stats_us(took).0
    };
    for id in 2..=10 {
        inside.handle(&osc_line(&format!("/module/new vca {id}")));
    }
    let small = new_us(&inside);
    // Ids 1 ..= 1000 (4,750 commands: the rings hold them): the first ten exist already
    // (their `/module/new` is refused, their cables are made), the rest make 1,000 modules.
    for line in voices(250).lines() {
        inside.handle(&osc_line(line));
    }
    let modules = ledger.lock().map(|l| l.modules()).unwrap_or(0);
    let large = new_us(&inside);
    println!(
        "edit: /module/new handled into 10 modules {small:.2} us, into {modules} modules {large:.2} us ({:.2}x)",
        large / small
    );
    json.push(format!("\"edit_new_us\": [{small:.2}, {large:.2}], \"edit_modules\": {modules}"));

    // Flood: one sender as fast as it can for a while, another thread counting replies; the
    // audio thread keeps rendering. Answered per second and the OSC side's memory, before and
    // after (this process's RSS: the server's side of it is the OSC thread and ledger).
    let flood_s = if full { 3.0 } else { 0.2 };
    let _ = flood(server_addr, flood_s / 4.0); // warm-up: threads, arenas, socket buffers
    let (answered_per_s, sent_per_s, rss_delta_kib) = flood(server_addr, flood_s);
    println!(
        "flood: {sent_per_s:.0} messages/s sent, {answered_per_s:.0}/s answered (/done or /fail Busy), RSS change {rss_delta_kib} KiB"
    );
    json.push(format!(
        "\"flood_answered_per_s\": {answered_per_s:.0}, \"flood_sent_per_s\": {sent_per_s:.0}, \"flood_rss_delta_kib\": {rss_delta_kib}"
    ));
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = audio.join();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let _ = osc.join();
    drop(engine);
    drop(pool);

    // Crash recovery: kill -9 a worker, then what the supervisor does: reap it (pidfd), launch
    // the replacement on its slot, wait until it is ready. Timed from the kill.
    let (pool, _) = start(2, &exe);
    let kills = if full { 40 } else { 2 };
    let mut recovery = Vec::with_capacity(kills);
    for _ in 0..kills {
        let t = Instant::now();
        pool.kill(0);
        let death = loop {
            if let Some(death) = pool.wait_for_death(Duration::from_millis(100)) {
                break death;
            }
        };
        pool.relaunch(death.index, None).expect("replacement starts");
        recovery.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(pool);
    let (rec_p50, rec_p99) = stats_us(recovery);
    println!("worker crash to replacement ready ({kills} kills): median {rec_p50:.0} us, p99 {rec_p99:.0} us");
    json.push(format!("\"recovery_us\": [{rec_p50:.1}, {rec_p99:.1}], \"kills\": {kills}"));

    speedups(&exe, full, &mut json);

    if full {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let path = target.join("server-bench.json");
        std::fs::write(&path, format!("{{{}}}\n", json.join(", "))).expect("write results");
        println!("wrote {}", path.display());
    }
}
