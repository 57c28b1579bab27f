//! The server as a user meets it: the real `synthpool` binary, real OSC clients (liblo's
//! `oscsend`, python-osc, and rosc), and the sound checked in what it recorded.
use std::process::Command;
use std::time::Duration;
use synthpool_tests::*;

fn pause(seconds: f64) {
    std::thread::sleep(Duration::from_secs_f64(seconds));
}

/// The first sample after `fit_end` where `out` leaves the sine of `hz` it held for the 0.1 s
/// before `fit_end` (fitted by least squares). A glide to another pitch starts on the first
/// sample of its block and moves the phase by 4.5e-4 after one sample, 2.7e-3 after three;
/// silent blocks (dropouts on a loaded machine) are skipped, not taken for a change.
fn departure_from_sine(out: &[f32], hz: f64, fit_end: usize) -> usize {
    departure_after_fit(out, hz, fit_end - FS as usize / 10, fit_end)
}

/// As [`departure_from_sine`], fitted over `out[fit_start..fit_end]`.
fn departure_after_fit(out: &[f32], hz: f64, fit_start: usize, fit_end: usize) -> usize {
    let w = std::f64::consts::TAU * hz / FS as f64;
    let silent = silent_blocks(out);
    let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &x) in out.iter().enumerate().take(fit_end).skip(fit_start) {
        if silent[n / BLOCK] {
            continue;
        }
        let (sn, cn) = ((w * n as f64).sin(), (w * n as f64).cos());
        let x = x as f64;
        (ss, sc, cc, xs, xc) = (ss + sn * sn, sc + sn * cn, cc + cn * cn, xs + x * sn, xc + x * cn);
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
    (fit_end..out.len())
        .filter(|&n| !silent[n / BLOCK])
        .find(|&n| (out[n] as f64 - (a * (w * n as f64).sin() + b * (w * n as f64).cos())).abs() > 2e-3)
        .expect("the pitch changed")
}

#[test]
fn a_vco_patched_to_out_over_oscsend_is_heard_at_440_hz() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("oscsend", &["--workers", "2"]);
    oscsend(server.port, "/module/new", "si", &["vco", "1"]);
    oscsend(server.port, "/module/set", "iss", &["1", "wave", "sine"]);
    oscsend(server.port, "/module/set", "isf", &["1", "freq", "440"]);
    oscsend(server.port, "/patch", "isis", &["1", "out", "0", "in"]);
    let client = Client::new(server.port);
    assert!(wait_for(Duration::from_secs(5), || client.status().modules == 1), "the vco exists");
    pause(0.6);
    let (out, _) = stop_and_read(server, &wav);
    let last = longest_clean(&out, out.len() - FS as usize / 2, out.len());
    assert!(last.len() > FS as usize / 10, "at least 0.1 s without a dropout");
    // 0.5 Hz: 0.1 s of crossings resolves ~0.1 Hz; the rest is margin.
    let hz = freq_by_zero_crossings(last, FS as f32);
    assert!((hz - 440.0).abs() < 0.5, "{hz} Hz");
    // A full-scale sine: -3.01 dB RMS.
    assert!((rms_db(last) + 3.01).abs() < 0.05, "{} dB", rms_db(last));
}

#[test]
fn a_set_to_220_hz_lands_within_one_block_of_the_block_in_flight() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("latency", &["--workers", "2"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 440.0, 1.0);
    pause(0.3);
    let before = i64::from(client.status().generation);
    assert_eq!(client.ask("/module/set", vec![i(1), s("freq"), f(220.0)]).addr, "/done");
    let after = i64::from(client.status().generation);
    pause(0.3);
    let (out, _) = stop_and_read(server, &wav);

    let left = departure_from_sine(&out, 440.0, (before.max(1) as usize - 1) * BLOCK);
    // Recorded block k is generation k + 1 (generation 1 is the first block).
    let changed_generation = (left / BLOCK) as i64 + 1;
    assert!(
        changed_generation > before && changed_generation <= after + 2,
        "set sent after generation {before}, answered by {after}, heard from {changed_generation}"
    );
    let tail = longest_clean(&out, out.len() - FS as usize / 5, out.len());
    let hz = freq_by_zero_crossings(tail, FS as f32);
    assert!((hz - 220.0).abs() < 1.0, "{hz} Hz");
}

#[test]
fn a_freed_module_fades_out_without_a_click_then_is_silent() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("free", &["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 3, 220.0, 1.0);
    pause(0.4);
    assert_eq!(client.ask("/module/free", vec![i(3)]).addr, "/done");
    pause(0.3);
    let (out, _) = stop_and_read(server, &wav);
    let last_sound = out.iter().rposition(|&x| x != 0.0).expect("it sounded");
    let first_sound = out.iter().position(|&x| x != 0.0).expect("it sounded");
    // Steady: a 220 Hz full-scale sine steps at most 2 pi 220 / 48000 = 0.029 per sample.
    let steady = max_step(&out[first_sound + BLOCK..last_sound - 2 * BLOCK]);
    let fade = &out[last_sound - 2 * BLOCK..=last_sound + 1];
    assert!(max_step(fade) <= 2.0 * steady, "fade step {} vs steady {steady}", max_step(fade));
    // The fade takes one block; then exact silence to the end.
    assert!(out[last_sound].abs() < 0.05, "the last sample before silence is small: {}", out[last_sound]);
    assert!(out.len() - last_sound > FS as usize / 10, "silent for the rest");
}

#[test]
fn modules_on_two_workers_are_both_heard() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("two-workers", &["--workers", "2"]);
    let client = Client::new(server.port);
    // Placement goes by measured load: on a loaded machine both may land on the worker
    // that measured idler. Each is placed until it lands on its own worker. 750 and 1500 Hz
    // are one and two cycles a block: each block tells whether each tone is there.
    for (id, hz) in [(1, 750.0), (2, 1500.0)] {
        sine_on_worker(&client, id, hz, 0.5, id as usize - 1);
    }
    let status = client.status();
    let modules: Vec<u32> = status.workers.iter().map(|w| w.modules).collect();
    assert_eq!(modules, vec![1, 1], "one voice on each worker: {status:?}");
    pause(0.5);
    let (out, _) = stop_and_read(server, &wav);
    // A block one worker was late for (a loaded machine) lacks its tone: the 0.1 s measured
    // is one where both play in every block.
    let (a, b) = (tone_per_block(&out, 1), tone_per_block(&out, 2));
    let from = a.len() - a.len().min((FS as usize / 4) / BLOCK * 2);
    let both: Vec<bool> = (0..a.len()).map(|k| k >= from && a[k] > 0.4 && b[k] > 0.4).collect();
    let (start, length) = runs(&both).into_iter().max_by_key(|r| r.1).unwrap_or((0, 0));
    let blocks = (FS as usize / 10).div_ceil(BLOCK);
    assert!(length >= blocks, "0.1 s with both tones in every block: longest {length} blocks");
    // 0.1 s holds 75 and 150 whole periods: one DFT bin sees each tone alone.
    let last = &out[start * BLOCK..start * BLOCK + FS as usize / 10];
    for hz in [750.0, 1500.0] {
        let amplitude = tone_amplitude(last, hz, FS as f32);
        assert!((amplitude - 0.5).abs() < 0.01, "{hz} Hz at {amplitude}");
    }
}

#[test]
fn status_pids_are_live_worker_processes_pinned_to_distinct_cores() {
    let _machine = exclusive();
    let server = Server::start(&["--workers", "2"]);
    let client = Client::new(server.port);
    let status = client.status();
    let workers = status.workers.len();
    assert_eq!(workers, 2);
    let mut cores = Vec::new();
    for (w, worker) in status.workers.iter().enumerate() {
        let (pid, core) = (worker.pid, worker.core);
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("worker is alive");
        let field = |name: &str| {
            proc_status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(field("Cpus_allowed_list:"), core.to_string(), "worker {w} pinned to its core");
        assert_eq!(field("PPid:"), server.pid().to_string(), "worker {w} is the server's child");
        assert!(field("Name:").starts_with("synthpool-work"), "{}", field("Name:"));
        cores.push(core);
    }
    cores.dedup();
    assert_eq!(cores.len(), workers.min(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)));
}

#[test]
fn python_osc_bundles_apply_all_or_none() {
    let _machine = exclusive();
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{} missing: `cargo xtask test` creates it with python-osc", python.display());
    let server = Server::start(&["--workers", "2"]);
    let out = Command::new(&python)
        .arg(root().join("tests/clients/bundles.py"))
        .arg(server.port.to_string())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[..3].iter().all(|l| l.starts_with("/done")), "{text}");
    assert!(lines[3].starts_with("/fail\t/module/new\tUnknownKind"), "{text}");
    // The dump holds the voice and nothing of the failed bundle (no module 6).
    assert!(lines[4].contains("/module/new vco 5") && lines[4].contains("/patch 5 out 0 in"), "{text}");
    assert!(!lines[4].contains("vco 6"), "{text}");
}

#[test]
fn render_mode_and_live_mode_give_the_same_sound() {
    let _machine = exclusive();
    let dir = scratch("render-live");
    let (live_wav, render_wav) = (dir.join("live.wav"), dir.join("render.wav"));
    let server = Server::start(&["--workers", "2", "--demo", "--record", live_wav.to_str().unwrap()]);
    pause(3.0);
    // Blocks in which a cable between workers came too late (its worker was late): the
    // effects it feeds took silence for it, and carry that in their tails from then on.
    let status = Client::new(server.port).status();
    let late_links: u32 = status.workers.iter().map(|w| w.late_links).sum();
    let (code, said) = server.stop();
    assert_eq!(code, 0);
    let status = Command::new(server_binary())
        .args(["render", "--workers", "2", "--seconds", "3.5", "--script"])
        .arg(root().join("demo/demo.osc"))
        .arg("--out")
        .arg(&render_wav)
        .status()
        .expect("render runs");
    assert!(status.success());
    let (live, rendered) = (read_wav(&live_wav), read_wav(&render_wav));
    assert!(live.len() > 2 * FS as usize, "live ran {} samples", live.len());
    // A worker late for a block drops its contribution to that block only (its state still
    // advances): such blocks may differ, every other block is identical to the render.
    let late: usize = said
        .iter()
        .find_map(|l| l.split_once("blocks (").and_then(|(_, r)| r.split(' ').next()).and_then(|n| n.parse().ok()))
        .expect("the server reports its late blocks");
    let demo_late: usize = said
        .iter()
        .find_map(|l| {
            l.strip_prefix("synthpool: demo: ").and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok())
        })
        .expect("the server reports the demo's late lines");
    assert_eq!(demo_late, 0, "the demo queued lines after their block: the machine stalled for 0.5 s");
    let blocks = live.len().min(rendered.len()) / BLOCK;
    let differing =
        (0..blocks).filter(|b| live[b * BLOCK..(b + 1) * BLOCK] != rendered[b * BLOCK..(b + 1) * BLOCK]).count();
    if late_links == 0 {
        assert!(differing <= late, "{differing} of {blocks} blocks differ, {late} were late");
    } else {
        // A loaded machine: the delay and reverb heard silence for a late worker's share, so
        // the tails differ from there on; block for block it cannot be checked in this run.
        println!("{late_links} link blocks came late: {differing} of {blocks} blocks differ, not compared");
    }
    assert!(peak_db(&live) > -20.0, "the demo is audible");
}

#[test]
fn a_bundle_with_a_future_timetag_applies_at_the_block_it_names() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("timetag", &["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 440.0, 1.0);
    pause(0.3);
    let before = i64::from(client.status().generation);
    let at = std::time::SystemTime::now() + Duration::from_millis(300);
    let set = rosc::OscMessage { addr: "/module/set".into(), args: vec![i(1), s("freq"), f(220.0)] };
    client.send_packet(&rosc::OscPacket::Bundle(rosc::OscBundle {
        timetag: rosc::OscTime::try_from(at).unwrap(),
        content: vec![rosc::OscPacket::Message(set)],
    }));
    assert_eq!(client.reply().addr, "/done");
    let after = i64::from(client.status().generation);
    pause(0.6);
    let (out, _) = stop_and_read(server, &wav);
    let left = departure_from_sine(&out, 440.0, (before.max(1) as usize - 1) * BLOCK);
    let changed_generation = (left / BLOCK) as i64 + 1;
    // 300 ms is 225 blocks after the send (which fell between `before` and `after`), to the
    // nearest block: one block of rounding and one of the block in flight either side.
    let (earliest, latest) = (before + 225 - 2, after + 225 + 2);
    assert!(
        (earliest..=latest).contains(&changed_generation),
        "sent between generations {before} and {after}; heard from {changed_generation}, not {earliest}..={latest}"
    );
}

/// A voice moved to another worker carries on: mid-attack, its tone neither dips nor
/// restarts. The voice (3 modules) is placed on one worker and a larger silent chain (5) on
/// the other; a cable from the chain into the voice (at no depth: the sound stays the same)
/// joins them, and the smaller, the voice, moves. Its modules hand their state over to the
/// other worker in the block of the move, which both workers play half each.
#[test]
fn a_voice_moved_to_another_worker_carries_on_without_a_dip() {
    let _machine = exclusive();
    // On a loaded machine an attempt can tell nothing: a block a worker missed is missing
    // from the recording, which no check of a tone's shape can tell from a dip; and
    // placement by measured load may put the chain beside the voice.
    up_to_three_attempts(move_a_voice);
}

/// Runs `attempt(1)`, `attempt(2)` ... until one tells (Ok, or a panic that fails the
/// test); an attempt that cannot tell on this machine's load says why (Err) and is tried
/// again, three times in all.
fn up_to_three_attempts(attempt: impl Fn(usize) -> Result<(), String>) {
    for n in 1..=3 {
        match attempt(n) {
            Ok(()) => return,
            Err(why) => eprintln!("attempt {n}: {why}; again"),
        }
    }
    panic!("no attempt could tell: the machine is too loaded");
}

/// What would spoil an attempt of a test that times samples, as `/status` counts it:
/// bundles applied after the time they named (`late_bundles`), and blocks a worker missed
/// (missing from the recording), in all.
fn spoilers(client: &Client) -> (i64, i64) {
    let status = client.status();
    let late_blocks = status.workers.iter().map(|w| i64::from(w.late_blocks)).sum();
    (i64::from(status.late_bundles), late_blocks)
}

/// Why an attempt whose check failed cannot tell, if `spoilers` grew from `before` to
/// `after` (a check that passed passes whatever the machine did).
fn spoiled(before: (i64, i64), after: (i64, i64)) -> Option<String> {
    let (bundles, blocks) = (after.0 - before.0, after.1 - before.1);
    (bundles > 0 || blocks > 0).then(|| format!("{bundles} bundles came after their time, {blocks} blocks were missed"))
}

/// One attempt of [`a_voice_moved_to_another_worker_carries_on_without_a_dip`]: panics when
/// the tone bends with no late block around the move; Err(why) when it could not tell.
fn move_a_voice(attempt: usize) -> Result<(), String> {
    let (server, wav) = Server::recording(&format!("handover-{attempt}"), &["--workers", "2"]);
    let client = Client::new(server.port);
    // 750 Hz: one cycle a block, followed block by block; a 1 s attack, so a restart shows.
    bundle(
        &client,
        &[
            "/module/new vco 1",
            "/module/new adsr 2",
            "/module/new vca 3",
            "/module/set 1 wave sine",
            "/module/set 1 freq 750",
            "/module/set 1 fm_depth 0",
            "/module/set 2 attack 1",
            "/module/set 2 sustain 1",
            "/module/set 3 gain 0.5",
            "/module/set 2 gate 1",
            "/patch 1 out 3 in",
            "/patch 2 out 3 cv",
            "/patch 3 out 0 in",
        ],
    );
    bundle(
        &client,
        &[
            "/module/new lfo 10",
            "/module/new vca 11",
            "/module/new vca 12",
            "/module/new vca 13",
            "/module/new vca 14",
            "/module/set 10 depth 0",
            "/patch 10 out 11 in",
            "/patch 11 out 12 in",
            "/patch 12 out 13 in",
            "/patch 13 out 14 in",
        ],
    );
    let status = client.status();
    let counts = (status.workers[0].modules, status.workers[1].modules);
    if counts != (3, 5) && counts != (5, 3) {
        return Err(format!("the chain was placed beside the voice: {counts:?}"));
    }
    pause(0.3);
    let (before, spoilers_before) = (i64::from(client.status().generation), spoilers(&client));
    assert_eq!(client.ask("/patch", vec![i(10), s("out"), i(1), s("fm")]).addr, "/done");
    let after = i64::from(client.status().generation);
    let status = client.status();
    let counts = (status.workers[0].modules, status.workers[1].modules);
    assert!(counts == (8, 0) || counts == (0, 8), "the voice joined the chain: {counts:?}");
    pause(0.3);
    let spoiled = spoiled(spoilers_before, spoilers(&client));
    let (out, _) = stop_and_read(server, &wav);
    let amplitude = tone_per_block(&out, 1);
    // The move lands two blocks after the /patch was sent (its bundle is due then); look
    // from a little before the send to well after it (generation k is recorded block k - 1).
    let (from, to) = ((before as usize).saturating_sub(10), after as usize + 40);
    assert!(to < amplitude.len(), "recorded past the move");
    let silent = silent_blocks(&out);
    let (mut worst, mut at): (f64, usize) = (0.0, 0);
    for k in from + 1..to - 1 {
        if silent[k - 1] || silent[k] || silent[k + 1] {
            continue; // a block a worker missed: gone from the recording, not bent
        }
        // The attack rises in a straight line: each block is the mean of its neighbours.
        let bend = (amplitude[k] - (amplitude[k - 1] + amplitude[k + 1]) / 2.0).abs() / amplitude[k].max(1e-9);
        if bend > worst {
            (worst, at) = (bend, k);
        }
    }
    if let Some(why) = spoiled.filter(|_| worst >= 0.01) {
        return Err(why);
    }
    let heard = |k: &usize| !silent[*k];
    assert!(
        (from..to).filter(heard).all(|k| amplitude[k] > 0.05),
        "the voice plays throughout: {:?}",
        &amplitude[from..to]
    );
    assert!(
        worst < 0.01,
        "the tone bends by {:.1}% of itself around the move, at block {at} (the /patch was sent between blocks {before} and {after}): {:?}",
        worst * 100.0,
        &amplitude[at.saturating_sub(3)..at + 4]
    );
    Ok(())
}

/// Runs `tests/clients/timed_sets.py`: python-osc sends one timetagged bundle per value,
/// setting `param` of module `id` to it, 0.3 s from now, then 10 ms and 20.5 ms after; each
/// must be answered `/done`.
fn timed_sets(port: u16, id: i32, param: &str, values: &[&str]) {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{} missing: `cargo xtask test` creates it with python-osc", python.display());
    let out = Command::new(&python)
        .arg(root().join("tests/clients/timed_sets.py"))
        .args([port.to_string(), id.to_string(), param.to_owned()])
        .args(values)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("/done\t/module/set")).count(), values.len(), "{text}");
}

/// Timetags name samples, not blocks: python-osc sends three bundles that open, close and
/// open again an envelope's gate 10 ms (480 samples) and 10.5 ms (504 samples) apart. The
/// envelope, patched straight to the output, starts, releases and starts again exactly that
/// many samples apart; block-accurate timing would put every change at a multiple of 64.
#[test]
fn timetagged_gates_open_and_close_at_the_sample_they_name() {
    let _machine = exclusive();
    // A loaded machine may hand the server a bundle after its time: it then applies at
    // once, on a block's start, and the attempt cannot tell.
    up_to_three_attempts(timed_gates);
}

fn timed_gates(attempt: usize) -> Result<(), String> {
    let (server, wav) = Server::recording(&format!("timed-gates-{attempt}"), &["--workers", "1"]);
    let client = Client::new(server.port);
    assert_eq!(client.ask("/module/new", vec![s("adsr"), i(1)]).addr, "/done");
    // The shortest attack and release (0.5 ms, 24 samples), held at full level.
    for (param, value) in [("attack", 0.0005), ("decay", 0.0005), ("sustain", 1.0), ("release", 0.0005)] {
        assert_eq!(client.ask("/module/set", vec![i(1), s(param), f(value)]).addr, "/done");
    }
    assert_eq!(client.ask("/patch", vec![i(1), s("out"), i(0), s("in")]).addr, "/done");
    pause(0.2);
    let before = spoilers(&client);
    timed_sets(server.port, 1, "gate", &["1", "0", "1"]);
    pause(0.5);
    let after = spoilers(&client);
    let (y, _) = stop_and_read(server, &wav);
    let spoiled = spoiled(before, after);
    // The output's level scales the envelope: its held level is the recording's peak.
    let held_level = y.iter().copied().fold(0.0f32, f32::max);
    let opens = y.iter().position(|&v| v > 0.0).expect("the gate opened");
    let peak = opens + y[opens..].iter().position(|&v| v == held_level).expect("the attack ends");
    let released = peak + y[peak..].iter().position(|&v| v < held_level).expect("the gate closed");
    let closed = released + y[released..].iter().position(|&v| v == 0.0).expect("the release ends");
    let reopens = closed + y[closed..].iter().position(|&v| v > 0.0).expect("the gate opened again");
    let (held, apart) = (released as i64 - opens as i64, reopens as i64 - released as i64);
    // Each time is converted to a sample on its own: one sample of rounding either side.
    if let Some(why) = spoiled.filter(|_| (held - 480).abs() > 1 || (apart - 504).abs() > 1) {
        return Err(why);
    }
    assert!((held - 480).abs() <= 1, "open at {opens}, released at {released}: {held} samples, not 480");
    assert!((apart - 504).abs() <= 1, "released at {released}, open again at {reopens}: {apart} samples, not 504");
    Ok(())
}

/// A vco's frequency steps on the sample a timetag names: python-osc sends two bundles
/// 10 ms (480 samples) apart, 750 Hz to 1500 Hz and back. The recorded tone leaves each
/// pitch exactly that many samples apart (a glide over the block, as untimed changes make,
/// would start both changes at a block's start, a multiple of 64 samples apart).
#[test]
fn timetagged_frequency_changes_step_at_the_sample_they_name() {
    let _machine = exclusive();
    up_to_three_attempts(timed_frequencies);
}

fn timed_frequencies(attempt: usize) -> Result<(), String> {
    let (server, wav) = Server::recording(&format!("timed-freq-{attempt}"), &["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 750.0, 0.5);
    pause(0.2);
    // The recording's sample now (generation k is recorded block k - 1): the changes come
    // 0.3 s later, after a stretch of steady 750 Hz to fit.
    let now = (client.status().generation as usize).saturating_sub(1) * BLOCK;
    let before = spoilers(&client);
    timed_sets(server.port, 1, "freq", &["1500", "750"]);
    pause(0.5);
    let after = spoilers(&client);
    let (y, _) = stop_and_read(server, &wav);
    let spoiled = spoiled(before, after);
    let up = departure_from_sine(&y, 750.0, now);
    // The 1500 Hz stretch is 480 samples: fit it well inside, then find where it ends.
    let down = departure_after_fit(&y, 1500.0, up + 32, up + 400);
    let apart = down as i64 - up as i64;
    // Where a pitch change shows depends on the wave's phase there: a few samples.
    if let Some(why) = spoiled.filter(|_| (apart - 480).abs() > 4) {
        return Err(why);
    }
    assert!((apart - 480).abs() <= 4, "up at {up}, down at {down}: {apart} samples, not 480");
    Ok(())
}

/// JACK's dummy driver paces the server like a sound card would (one 64-frame period at a
/// time, from JACK's own thread): the server renders through cpal's JACK backend.
#[test]
fn through_jack_s_dummy_driver_a_440_hz_vco_is_heard() {
    let _machine = exclusive();
    let Some(jack) = Jack::start() else { return };
    let (server, wav) = Server::recording("jack", &["--workers", "2", "--audio", "jack"]);
    assert!(server.startup.iter().any(|l| l.contains("audio: jack:")), "{:?}", server.startup);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 440.0, 1.0);
    pause(0.8);
    let (out, _) = stop_and_read(server, &wav);
    drop(jack);
    let last = longest_clean(&out, out.len() - FS as usize / 2, out.len());
    assert!(last.len() > FS as usize / 10, "at least 0.1 s without a dropout");
    let hz = freq_by_zero_crossings(last, FS as f32);
    assert!((hz - 440.0).abs() < 0.5, "{hz} Hz");
}

#[test]
fn a_feedback_patch_with_a_parameter_cable_plays_and_survives_a_restart() {
    let _machine = exclusive();
    let dir = scratch("feedback-restart");
    let state = dir.join("state");
    let state = state.to_str().unwrap();
    let wav = dir.join("after.wav");
    let first = Server::start(&["--workers", "2", "--state", state]);
    let port = first.port;
    let client = Client::new(port);
    // A vco into its own fm (feedback, a block late) and an lfo into a vca's `gain` port.
    bundle(
        &client,
        &[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 220",
            "/module/set 1 fm_depth 0.1",
            "/module/new vca 2",
            "/module/set 2 gain 0.5",
            "/module/new lfo 3",
            "/module/set 3 depth 0",
            "/module/set 3 offset 0",
            "/patch 1 out 2 in",
            "/patch 2 out 0 in",
            "/patch 3 out 2 gain",
            "/patch 1 out 1 fm",
        ],
    );
    let before = client.dump();
    assert!(before.contains(&"/patch 1 out 1 fm feedback".to_string()), "{before:#?}");
    assert!(before.contains(&"/patch 3 out 2 gain".to_string()), "{before:#?}");
    let saved = dir.join("state/patch.osc");
    let written = wait_for(Duration::from_secs(3), || {
        std::fs::read_to_string(&saved).is_ok_and(|text| text.lines().filter(|l| l.starts_with('/')).eq(before.iter()))
    });
    assert!(written, "the patch is saved after the last change");
    first.stop();
    let second = Server::start_on(port, &["--workers", "2", "--state", state, "--record", wav.to_str().unwrap()]);
    assert!(second.startup.iter().any(|l| l.contains("restored the last patch")), "{:?}", second.startup);
    assert_eq!(client.dump(), before, "the same patch, the same feedback cable");
    pause(0.6);
    let (out, _) = stop_and_read(second, &wav);
    assert!(out.iter().all(|x| x.is_finite()));
    let last = longest_clean(&out, out.len() - FS as usize / 2, out.len());
    assert!(last.len() > FS as usize / 10, "at least 0.1 s without a dropout");
    // 1.5 Hz: feedback FM at depth 0.1 pulls the pitch up by ~0.2% (220.40 Hz in the core's
    // test); 0.1 s of crossings resolves ~0.1 Hz.
    let hz = freq_by_zero_crossings(last, FS as f32);
    assert!((hz - 220.4).abs() < 1.5, "{hz} Hz");
}
