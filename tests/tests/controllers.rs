//! Any OSC controller as it comes (issue 13): a fader's float at an address of its own,
//! mapped to a parameter, moves the sound; learn maps the address a controller sends next; a
//! client registered with `/notify 1` hears another's fader scaled back to 0..1; mappings
//! are part of the saved patch. The fader is python-osc (as TouchOSC sends: one float), the
//! other clients rosc.
use std::process::Command;
use std::time::Duration;
use synthpool_tests::*;

/// Moves a controller's fader: python-osc sends `address value` (a float) and returns the
/// server's reply, tab-separated.
fn fader(port: u16, address: &str, value: f32) -> String {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{} missing: `cargo xtask test` creates it with python-osc", python.display());
    let out = Command::new(&python)
        .arg(root().join("tests/clients/fader.py"))
        .args([&port.to_string(), address, &value.to_string()])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "fader.py: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Blocks to measure a setting over: 0.5 s at 48 kHz (a 0.1 s stretch without a dropout
/// is what the measures need; the rest is room for dropouts on a loaded machine, as in
/// `server.rs`).
const HOLD_BLOCKS: u32 = 375;

/// Lets the server play `HOLD_BLOCKS` blocks with what was just answered, and returns the
/// recorded samples' range that holds it: it is heard two blocks after the generation the
/// answer left at the latest (`server.rs`'s latency test) and glides over one more.
fn hold(client: &Client) -> (usize, usize) {
    let answered = client.status().generation;
    let from = answered + 3;
    let to = from + HOLD_BLOCKS;
    // Paced by the clock: 0.5 s, longer on a loaded machine (the wait is not measured).
    assert!(wait_for(Duration::from_secs(30), || client.status().generation >= to), "the server plays");
    // Recorded block k is generation k + 1.
    ((from as usize - 1) * BLOCK, (to as usize - 1) * BLOCK)
}

/// The longest stretch of `out[range]` without a dropout; at least 0.1 s.
fn clean(out: &[f32], (from, to): (usize, usize)) -> &[f32] {
    let stretch = longest_clean(out, from, to);
    assert!(stretch.len() >= FS as usize / 10, "0.1 s without a dropout in {from}..{to}");
    stretch
}

fn map_fader_to_freq(client: &Client) {
    let map = vec![s("/1/fader1"), i(1), s("freq"), f(110.0), f(1760.0), s("exp")];
    assert_eq!(client.ask("/map", map).addr, "/done");
}

#[test]
fn a_fader_mapped_exp_to_a_vcos_frequency_moves_the_recorded_pitch() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("fader", &["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 1000.0, 0.5);
    map_fader_to_freq(&client);
    let mut held = Vec::new();
    // 110..1760 Hz, exp: four octaves, one a quarter of the fader.
    for (x, hz) in [(0.25, 220.0), (0.5, 440.0), (0.75, 880.0), (0.125, 155.563_5)] {
        assert_eq!(fader(server.port, "/1/fader1", x), format!("/done\t/1/fader1\t{x}"));
        held.push((hz, hold(&client)));
    }
    let (out, _) = stop_and_read(server, &wav);
    for (hz, range) in held {
        // 0.5 Hz: 0.1 s of crossings resolves ~0.1 Hz; the rest is margin.
        let heard = freq_by_zero_crossings(clean(&out, range), FS as f32);
        assert!((heard - hz).abs() < 0.5, "fader for {hz} Hz: heard {heard} Hz");
    }
}

#[test]
fn learn_maps_the_address_a_controller_sends_next_and_its_level_is_heard() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("learn", &["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 750.0, 1.0);
    let learn = client.ask("/map/learn", vec![i(1), s("level")]);
    assert_eq!(learn.args, vec![s("/map/learn"), i(1), s("level")]);
    assert_eq!(fader(server.port, "/2/rotary1", 0.25), "/done\t/2/rotary1\t0.25");
    let learned = client.reply();
    let expected = vec![s("/2/rotary1"), i(1), s("level"), f(0.0), f(1.0), s("lin")];
    assert_eq!((learned.addr.as_str(), learned.args), ("/map/learned", expected));
    let quarter = hold(&client);
    assert_eq!(fader(server.port, "/2/rotary1", 0.5), "/done\t/2/rotary1\t0.5");
    let half = hold(&client);
    // Learning took one address: the next unknown one is refused.
    let other = fader(server.port, "/2/rotary2", 0.5);
    assert!(other.starts_with("/fail\t/2/rotary2\tUnknownAddress"), "{other}");
    let (out, _) = stop_and_read(server, &wav);
    for (level, range) in [(0.25, quarter), (0.5, half)] {
        // 750 Hz: whole periods in a block, so one DFT bin sees it alone; f32 sums to 1e-4.
        let amplitude = tone_amplitude(clean(&out, range), 750.0, FS as f32);
        assert!((amplitude - level).abs() < 1e-3, "level {level}: heard {amplitude}");
    }
}

#[test]
fn a_notified_client_hears_another_controllers_fader_scaled_back_but_not_its_own_edits() {
    let _machine = exclusive();
    let server = Server::start(&["--workers", "1"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 1000.0, 0.5);
    map_fader_to_freq(&client);
    let listener = Client::new(server.port);
    assert_eq!(listener.ask("/notify", vec![i(1)]).addr, "/done");

    assert_eq!(fader(server.port, "/1/fader1", 0.5), "/done\t/1/fader1\t0.5");
    let moved = listener.reply();
    assert_eq!(moved.addr, "/1/fader1");
    let OscType::Float(x) = moved.args[0] else { panic!("{moved:?}") };
    // 440 Hz on 110..1760 exp is the fader's middle; f32's ln and pow to 1e-5.
    assert!((x - 0.5).abs() < 1e-5, "{x}");
    assert_eq!(listener.reply(), msg("/m/1/freq_hz", vec![f(440.0)]));

    // Its own edit is not echoed: the next thing it hears is the other client's edit.
    assert_eq!(listener.ask("/m/1/level", vec![f(0.25)]).addr, "/done");
    assert_eq!(client.ask("/m/1/pw", vec![f(0.3)]).addr, "/done");
    assert_eq!(listener.reply(), msg("/m/1/pw", vec![f(0.3)]));
    assert_eq!(client.ask("/m/1/level", vec![]), msg("/m/1/level", vec![f(0.25)]));

    // A saved patch loaded: every value that changes is heard, by the loader too.
    assert_eq!(listener.ask("/patch/save", vec![s("before")]).addr, "/done");
    assert_eq!(client.ask("/m/1/freq", vec![f(880.0)]).addr, "/done");
    assert_eq!(listener.reply().addr, "/1/fader1");
    assert_eq!(listener.reply(), msg("/m/1/freq_hz", vec![f(880.0)]));
    assert_eq!(listener.ask("/patch/load", vec![s("before")]).addr, "/done");
    let mut heard = Vec::new();
    while heard.len() < 2 {
        heard.push(listener.reply());
    }
    assert_eq!(heard[1], msg("/m/1/freq_hz", vec![f(440.0)]), "{heard:?}");
    assert_eq!(listener.ask("/notify", vec![i(0)]).addr, "/done");
}

#[test]
fn mappings_are_saved_with_the_patch_and_restored_after_a_restart() {
    let _machine = exclusive();
    let state = scratch("mapping-state");
    let state_arg = state.to_str().expect("a UTF-8 scratch path");
    let server = Server::start(&["--workers", "1", "--state", state_arg]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 1000.0, 0.5);
    map_fader_to_freq(&client);
    let line = "/map /1/fader1 1 freq_hz 110 1760 exp";
    assert_eq!(client.ask("/map/list", vec![]).args, vec![i(1), i(1), s(line)]);
    assert_eq!(client.dump().last().map(String::as_str), Some(line));
    let (code, _) = server.stop();
    assert_eq!(code, 0);

    let server = Server::start(&["--workers", "1", "--state", state_arg]);
    let client = Client::new(server.port);
    assert_eq!(client.ask("/map/list", vec![]).args, vec![i(1), i(1), s(line)]);
    assert_eq!(fader(server.port, "/1/fader1", 0.75), "/done\t/1/fader1\t0.75");
    let OscType::Float(hz) = client.ask("/m/1/freq", vec![]).args[0] else { panic!("a float") };
    // 110 * 16^0.75 = 880 Hz, to f32's pow.
    assert!((hz - 880.0).abs() < 0.01, "{hz}");
    // Freed with its module.
    assert_eq!(client.ask("/module/free", vec![i(1)]).addr, "/done");
    assert_eq!(client.ask("/map/list", vec![]).args, vec![i(1), i(1)]);
}

fn msg(addr: &str, args: Vec<OscType>) -> rosc::OscMessage {
    rosc::OscMessage { addr: addr.into(), args }
}

use rosc::OscType;
