//! Stereo and audio input as a user meets them: a voice panned in the mixer, recorded by the
//! live server; a WAV file played as the input of `synthpool render` through a filter.
use std::process::Command;
use std::time::Duration;
use synthpool_core::measure::{freq_by_zero_crossings, rms_db, tone_amplitude};
use synthpool_tests::*;

fn pause(seconds: f64) {
    std::thread::sleep(Duration::from_secs_f64(seconds));
}

/// The last `seconds` of `x` before its final `skip` samples, as a slice.
fn stretch(x: &[f32], seconds: f64, skip: usize) -> &[f32] {
    let end = x.len() - skip;
    &x[end - (seconds * FS as f64) as usize..end]
}

#[test]
fn a_voice_panned_in_the_mixer_is_louder_on_its_side_by_the_pan_law() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("stereo-pan", &["--workers", "2"]);
    let client = Client::new(server.port);
    bundle(
        &client,
        &[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 440",
            "/module/set 1 level 0.5",
            "/module/new mixer 2",
            "/patch 1 out 2 in1",
            "/patch 2 left 0 left",
            "/patch 2 right 0 right",
        ],
    );
    // liblo's client moves the pan, as a controller would.
    oscsend(server.port, "/m/2/pan1", "f", &["0.5"]);
    pause(0.6);
    let (left, right) = {
        let (code, said) = server.stop();
        assert_eq!(code, 0, "{said:?}");
        read_wav_stereo(&wav)
    };
    // The last 0.3 s but the final 50 ms (the stop): whole blocks, no dropout (a silent
    // block on a loaded machine would lower both sides alike, but skip them anyway).
    let (l, r) = (stretch(&left, 0.3, 2400), stretch(&right, 0.3, 2400));
    let clean = |x: &[f32]| silent_blocks(x).iter().all(|&s| !s);
    assert!(clean(l) && clean(r), "no dropout in the measured stretch");
    // Equal power: pan p puts cos and sin of (p + 1) pi / 4 on left and right; at 0.5,
    // 67.5 degrees, the right is tan(67.5) = 2.414 times the left, +7.66 dB.
    let angle = 1.5 * std::f64::consts::FRAC_PI_4;
    let (want_l, want_r) = (20.0 * (0.5 * angle.cos()).log10(), 20.0 * (0.5 * angle.sin()).log10());
    let (got_l, got_r) = (rms_db(l) + 3.0103, rms_db(r) + 3.0103);
    assert!((got_l - want_l).abs() < 0.05, "left {got_l:.3} dB, want {want_l:.3} dB");
    assert!((got_r - want_r).abs() < 0.05, "right {got_r:.3} dB, want {want_r:.3} dB");
}

#[test]
fn a_mono_patch_plays_the_same_bits_on_both_sides() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("stereo-mono", &["--workers", "2"]);
    let client = Client::new(server.port);
    sine_to_out(&client, 1, 330.0, 0.5);
    sine_to_out(&client, 2, 550.0, 0.25);
    pause(0.4);
    let (code, said) = server.stop();
    assert_eq!(code, 0, "{said:?}");
    let (left, right) = read_wav_stereo(&wav);
    assert!(rms_db(&left) > -20.0, "it plays");
    assert!(left == right, "`in` feeds both sides alike");
}

/// Writes a stereo 32-bit float WAV at the server's rate: `left` and `right` as functions of
/// the frame.
fn write_input(path: &std::path::Path, frames: usize, left: impl Fn(usize) -> f32, right: impl Fn(usize) -> f32) {
    let spec =
        hound::WavSpec { channels: 2, sample_rate: FS, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut writer = hound::WavWriter::create(path, spec).expect("create the input WAV");
    for n in 0..frames {
        writer.write_sample(left(n)).expect("write");
        writer.write_sample(right(n)).expect("write");
    }
    writer.finalize().expect("finalize");
}

#[test]
fn an_input_wav_through_a_lowpass_comes_out_filtered() {
    let dir = scratch("stereo-input");
    let input = dir.join("in.wav");
    let sine = |hz: f64, n: usize| (std::f64::consts::TAU * hz * n as f64 / FS as f64).sin() as f32;
    // Left: 200 Hz and 6 kHz, a quarter each; right: 300 Hz alone.
    write_input(&input, 2 * FS as usize, |n| 0.25 * sine(200.0, n) + 0.25 * sine(6000.0, n), |n| 0.25 * sine(300.0, n));
    let script = dir.join("filter.osc");
    std::fs::write(
        &script,
        "/module/new input 1\n/module/new vcf 2\n/module/set 2 cutoff_hz 800\n/module/set 2 q 0.7\n\
         /patch 1 left 2 in\n/patch 2 out 0 left\n/patch 1 right 0 right\n",
    )
    .expect("write the script");
    let out = dir.join("out.wav");
    let rendered = Command::new(server_binary())
        .args(["render", "--workers", "2", "--seconds", "1.5", "--script"])
        .arg(&script)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("synthpool render runs");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let (left, right) = read_wav_stereo(&out);
    let (l, r) = (&left[FS as usize / 2..], &right[FS as usize / 2..]);
    let level = |x: &[f32], hz: f64| 20.0 * tone_amplitude(x, hz, FS as f32).log10();
    // The pass band passes (a 2-pole lowpass at 800 Hz, Q 0.7: within 0.5 dB at 200 Hz)...
    let pass = level(l, 200.0) - 20.0 * 0.25f64.log10();
    assert!(pass.abs() < 0.5, "200 Hz changed by {pass:.2} dB");
    // ...and 6 kHz, nearly three octaves above the cutoff, is down by 30 dB at the least.
    let stop = level(l, 6000.0) - 20.0 * 0.25f64.log10();
    assert!(stop < -30.0, "6 kHz only {stop:.1} dB down");
    // The right input went to the right output untouched.
    let straight = level(r, 300.0) - 20.0 * 0.25f64.log10();
    assert!(straight.abs() < 0.01, "the right side changed by {straight:.3} dB");
    assert!(level(l, 300.0) < -80.0 && level(r, 200.0) < -80.0, "the sides stay apart");

    // Without --input the input is silence.
    let silent = dir.join("silent.wav");
    let rendered = Command::new(server_binary())
        .args(["render", "--workers", "1", "--seconds", "0.5", "--script"])
        .arg(&script)
        .arg("--out")
        .arg(&silent)
        .output()
        .expect("synthpool render runs");
    assert!(rendered.status.success());
    let (left, right) = read_wav_stereo(&silent);
    assert!(left.iter().chain(&right).all(|&s| s == 0.0), "no input, no sound");
}

/// Through JACK's dummy driver, a JACK client's sound reaches the server's `input` module:
/// JACK's example client plays a sine on each output (a 200-sample table stepped by 1 on
/// the first and by 3 on the second: 240 and 720 Hz at 48 kHz, 0.2 peak), connected to the
/// server's capture ports as a performer would patch a microphone in.
#[test]
fn through_jack_a_client_s_sound_comes_in_on_both_sides() {
    let _machine = exclusive();
    let Some(jack) = Jack::start() else { return };
    let (server, wav) = Server::recording("jack-input", &["--workers", "2", "--audio", "jack"]);
    assert!(server.startup.iter().any(|l| l.contains("input jack:input, 2 channels")), "{:?}", server.startup);
    let client = Client::new(server.port);
    bundle(&client, &["/module/new input 1", "/patch 1 left 0 left", "/patch 1 right 0 right"]);
    let mut sine = Command::new("jack_simple_client")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("jack_simple_client starts");
    let ours = format!("cpal_client_{}_in", server.pid());
    let connected = wait_for(Duration::from_secs(5), || {
        [("output1", "in_0"), ("output2", "in_1")].iter().all(|(from, to)| {
            Command::new("jack_connect")
                .args([format!("jack_simple_client:{from}"), format!("{ours}:{to}")])
                .status()
                .is_ok_and(|s| s.success())
        })
    });
    pause(0.8);
    let (code, said) = server.stop();
    let _ = sine.kill();
    let _ = sine.wait();
    drop(jack);
    assert!(connected, "jack_connect to {ours}");
    assert_eq!(code, 0, "{said:?}");
    let (left, right) = read_wav_stereo(&wav);
    let end = left.len() - FS as usize / 20;
    let (l, r) = (longest_clean(&left, end - FS as usize / 2, end), longest_clean(&right, end - FS as usize / 2, end));
    assert!(l.len() > FS as usize / 10 && r.len() > FS as usize / 10, "0.1 s without a dropout on each side");
    let (hz_l, hz_r) = (freq_by_zero_crossings(l, FS as f32), freq_by_zero_crossings(r, FS as f32));
    assert!((hz_l - 240.0).abs() < 1.0 && (hz_r - 720.0).abs() < 1.0, "{hz_l} Hz left, {hz_r} Hz right");
    let (peak_l, peak_r) = (tone_amplitude(l, 240.0, FS as f32), tone_amplitude(r, 720.0, FS as f32));
    assert!((peak_l - 0.2).abs() < 0.01 && (peak_r - 0.2).abs() < 0.01, "peaks {peak_l}, {peak_r}");
}
