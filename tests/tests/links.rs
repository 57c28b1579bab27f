//! Cables between workers: a patch whose voices meet in one delay and reverb (a shared bus)
//! is spread over the workers, and sounds as it does on one.
use std::process::Command;
use synthpool_tests::*;

/// The shared-bus patch: `voices` standard voices (saw -> lowpass 2 kHz Q 2 -> vca x 0.05
/// <- adsr, gate held), each patched to the output and into one delay -> reverb -> output.
/// Each voice's lines, and the bus's, as one group.
fn shared_bus(voices: usize) -> Vec<Vec<String>> {
    let mut groups = vec![
        ["/module/new delay 9000", "/module/set 9000 time 0.25", "/module/new reverb 9001"]
            .into_iter()
            .chain(["/patch 9000 out 9001 in", "/patch 9001 out 0 in"])
            .map(str::to_owned)
            .collect(),
    ];
    for v in 0..voices {
        let (vco, vcf, vca, env) = (1 + 4 * v, 2 + 4 * v, 3 + 4 * v, 4 + 4 * v);
        groups.push(vec![
            format!("/module/new vco {vco}"),
            format!("/module/set {vco} freq {}", 110 + 7 * v),
            format!("/module/new vcf {vcf}"),
            format!("/module/set {vcf} cutoff 2000"),
            format!("/module/set {vcf} q 2"),
            format!("/module/new vca {vca}"),
            format!("/module/set {vca} gain 0.05"),
            format!("/module/new adsr {env}"),
            format!("/module/set {env} gate 1"),
            format!("/patch {vco} out {vcf} in"),
            format!("/patch {vcf} out {vca} in"),
            format!("/patch {env} out {vca} cv"),
            format!("/patch {vca} out 0 in"),
            format!("/patch {vca} out 9000 in"),
        ]);
    }
    groups
}

/// Renders `script` offline for `seconds` on `workers` workers.
fn render(dir: &std::path::Path, script: &std::path::Path, workers: usize, seconds: f64) -> Vec<f32> {
    let out = dir.join(format!("{workers}.wav"));
    let rendered = Command::new(server_binary())
        .args(["render", "--workers", &workers.to_string(), "--seconds", &seconds.to_string(), "--script"])
        .arg(script)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("synthpool render runs");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    read_wav(&out)
}

#[test]
fn a_shared_bus_sounds_the_same_on_one_and_two_workers() {
    let _machine = exclusive();
    let dir = scratch("shared-bus-render");
    let script = dir.join("bus.osc");
    std::fs::write(&script, shared_bus(16).concat().join("\n") + "\n").unwrap();
    let one = render(&dir, &script, 1, 2.0);
    let two = render(&dir, &script, 2, 2.0);
    assert_eq!(one.len(), two.len());
    assert!(rms_db(&one) > -30.0, "the patch plays: {} dB", rms_db(&one));
    let differs = one.iter().zip(&two).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    // The same sums in another order: rounding only.
    assert!(differs < 1e-6, "two workers differ from one by {differs}");
}

#[test]
fn a_shared_bus_played_live_uses_both_workers() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("shared-bus-live", &["--workers", "2"]);
    let client = Client::new(server.port);
    // The bus first, then each voice as one bundle (as a controller sends a voice).
    for group in shared_bus(8) {
        let lines: Vec<&str> = group.iter().map(String::as_str).collect();
        bundle(&client, &lines);
    }
    let status = client.status();
    let modules: Vec<u32> = status.workers.iter().map(|w| w.modules).collect();
    // 8 voices of 4 modules and the bus's 2, spread by load: each worker holds voices.
    assert!(modules.iter().all(|&m| m >= 8), "modules per worker: {modules:?}");
    assert_eq!(modules.iter().sum::<u32>(), 34, "modules per worker: {modules:?}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (x, _) = stop_and_read(server, &wav);
    let clean = longest_clean(&x, x.len() / 2, x.len());
    assert!(clean.len() > FS as usize / 10, "at least 0.1 s without a dropout");
    assert!(rms_db(clean) > -30.0, "the patch plays: {} dB", rms_db(clean));
}

/// Builds the bus `lines` (modules `ids`) as one bundle until it lands on worker 0, whose lane
/// the audio thread renders: new modules go to the least loaded worker, then the emptiest,
/// and on a loaded machine worker 0 may measure busier for a while (its first blocks, or the
/// machine's other work). Panics after 20 tries.
fn bus_on_worker_0(client: &Client, lines: &[&str], ids: &[i32]) {
    settle(client);
    for _ in 0..20 {
        bundle(client, lines);
        if worker_of(client, ids[0]) == 0 {
            return;
        }
        for &id in ids {
            assert_eq!(client.ask("/module/free", vec![i(id)]).addr, "/done");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the bus never landed on worker 0");
}

#[test]
fn a_stopped_sender_is_counted_late_and_nobody_waits_past_the_deadline() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("shared-bus-stopped", &["--workers", "2"]);
    let client = Client::new(server.port);
    // The bus first, on worker 0 (the emptiest, lowest first), whose lane the audio thread
    // renders itself; the voices spread over both.
    let groups = shared_bus(8);
    let bus: Vec<&str> = groups[0].iter().map(String::as_str).collect();
    bus_on_worker_0(&client, &bus, &[9000, 9001]);
    for group in &groups[1..] {
        let lines: Vec<&str> = group.iter().map(String::as_str).collect();
        bundle(&client, &lines);
    }
    let bus = worker_of(&client, 9000);
    let sender = 1 - bus;
    assert!((0..8).any(|v| worker_of(&client, 3 + 4 * v) == sender), "voices on both workers");
    // Stopping a process whose lane the audio thread renders would make nothing late.
    assert_eq!(client.status().workers[sender].inline, 0, "the sender is a process that renders");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = client.status();
    let late_links = |status: &Status, w: usize| i64::from(status.workers[w].late_links);
    // The sender stops for 100 ms (SIGSTOP): the bus's worker waits for its block each
    // block until the deadline, then takes silence for it and counts it late.
    let pid = before.workers[sender].pid.to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = client.status();
    // 100 ms is 75 blocks; on a loaded machine it may have been late before too.
    let counted = late_links(&after, sender) - late_links(&before, sender);
    assert!(counted >= 10, "the stopped sender counted late in {counted} blocks");
    assert_eq!(late_links(&after, bus), 0, "the bus's worker sends nothing");
    let (x, _) = stop_and_read(server, &wav);
    // The bus's worker kept its deadline: its blocks are all there but the ones the host
    // counted late (a loaded machine), and the sound is back at the end.
    let bus_late = after.workers[bus].late_blocks as usize;
    let silent = silent_blocks(&x).iter().filter(|&&s| s).count();
    let clean = longest_clean(&x, x.len() - FS as usize / 5, x.len());
    assert!(clean.len() >= FS as usize / 10, "it plays at the end ({silent} silent blocks, {bus_late} late)");
    assert!(rms_db(clean) > -30.0, "{} dB", rms_db(clean));
}

/// A worker that sends into a shared bus is killed (-9): the bus's own worker plays on, the
/// killed worker's share comes back with its replacement, and the bus never clicks: its
/// receive ramps from the last sample it had to silence, and fades the share back in.
#[test]
fn a_killed_sender_comes_back_and_the_bus_plays_on_without_a_click() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("shared-bus-kill", &["--workers", "2"]);
    let client = Client::new(server.port);
    // The bus first, one bundle on one worker: a delay at mix 0 passes its input straight
    // through, a vca at 1 after it, on worker 0, whose lane the audio thread renders itself.
    bus_on_worker_0(
        &client,
        &[
            "/module/new delay 9000",
            "/module/set 9000 mix 0",
            "/module/new vca 9001",
            "/module/set 9001 gain 1",
            "/patch 9000 out 9001 in",
            "/patch 9001 out 0 in",
        ],
        &[9000, 9001],
    );
    // Tone A (750 Hz: one cycle a block) joins the bus's worker (the smaller component
    // moves); tone B (6000 Hz: eight) lands on the other (fewer modules), a process, and
    // reaches the bus through a link only.
    let tone = |id: i32, hz: f32, level: f32| {
        for (addr, args) in [
            ("/module/new", vec![s("vco"), i(id)]),
            ("/module/set", vec![i(id), s("wave"), s("sine")]),
            ("/module/set", vec![i(id), s("freq"), f(hz)]),
            ("/module/set", vec![i(id), s("level"), f(level)]),
            ("/patch", vec![i(id), s("out"), i(9000), s("in")]),
        ] {
            assert_eq!(client.ask(addr, args.clone()).addr, "/done", "{addr} {args:?}");
        }
    };
    tone(1, 750.0, 0.4);
    // Placement goes by measured load first: tone B is made again until it lands on the
    // other worker (on a loaded machine worker 1 may measure busier for a while).
    for _ in 0..20 {
        tone(2, 6000.0, 0.2);
        if worker_of(&client, 2) == 1 {
            break;
        }
        assert_eq!(client.ask("/module/free", vec![i(2)]).addr, "/done");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let bus = worker_of(&client, 9000);
    assert_eq!(worker_of(&client, 1), bus, "tone A by the bus");
    let sender = worker_of(&client, 2);
    assert_ne!(sender, bus, "tone B on the other worker");
    // Killing a process whose lane the audio thread renders would be heard nowhere.
    assert_eq!(client.status().workers[sender].inline, 0, "tone B's worker is a process that renders");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = client.status().workers[sender].pid;
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let back = wait_for(std::time::Duration::from_secs(5), || {
        let status = client.status();
        let worker = &status.workers[sender];
        worker.pid != 0 && worker.pid != pid && worker.state == WorkerState::Running
    });
    assert!(back, "the sender was replaced");
    std::thread::sleep(std::time::Duration::from_millis(400));
    let status = client.status();
    let (x, _) = stop_and_read(server, &wav);
    let (a, b) = (tone_per_block(&x, 1), tone_per_block(&x, 8));
    let start = (0..a.len()).find(|&k| a[k] > 0.3 && b[k] > 0.15).expect("both tones heard") + 4;
    // A never drops but for blocks the bus's worker itself was late for.
    let a_gaps = a[start..].iter().filter(|&&v| v < 0.3).count() as i64;
    let bus_late = i64::from(status.workers[bus].late_blocks);
    assert!(a_gaps <= bus_late, "tone A missing for {a_gaps} blocks, its worker late for {bus_late}");
    // B comes back (a replacement quick enough may leave no gap at all).
    let b_gap = runs(&b[start..].iter().map(|&v| v < 0.1).collect::<Vec<_>>());
    // Back for the 0.2 s before the last /status (after it the server is stopped, and its
    // workers exit one by one while the recording ends).
    let counted = (status.generation.max(1) as usize - 1).min(b.len());
    let from = counted - (0.2 * FS as f64 / BLOCK as f64) as usize;
    // (On a loaded machine the sender is late now and then: its share misses that block,
    // ramped out and faded back in, and is counted in its late_links.)
    let missing = b[from..counted].iter().filter(|&&v| v <= 0.15).count();
    assert!(missing * 10 <= counted - from, "tone B back: {missing} blocks missing, gaps {b_gap:?} from block {start}");
    // No click: no sample step beyond what the two sines make when they play steadily. A
    // block the bus's worker was late for is missing from the recording whole (silent: the
    // host's dropout, counted in its late blocks, not the bus's), so steps into and out of
    // such blocks are left out.
    let silent = silent_blocks(&x);
    let steady = max_step(&x[start * BLOCK..(start + 40) * BLOCK]);
    let worst = (start + 1..x.len() / BLOCK)
        .filter(|&k| !silent[k] && !silent[k - 1])
        .map(|k| max_step(&x[k * BLOCK - 1..(k + 1) * BLOCK]))
        .fold(0.0f32, f32::max);
    assert!(worst <= steady * 1.05 + 1e-3, "a step of {worst} against {steady} steady: B's gaps {b_gap:?}");
}
