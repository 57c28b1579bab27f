//! The demo as `synthpool render` plays it: its output has no DC.
use synthpool_core::measure::rms_db;
use synthpool_host::render::render_script;
use synthpool_host::server::DEMO_SCRIPT;

#[test]
fn the_demo_has_no_dc_offset() {
    // The whole demo (its last line is at 32 s): the mean of a tone over a stretch of whole
    // and part cycles is tiny, so what is left is the offset.
    let (samples, problems) = render_script(DEMO_SCRIPT, 32.0, 48_000, &[]);
    assert!(problems.is_empty(), "{problems:?}");
    for (channel, name) in ["left", "right"].into_iter().enumerate() {
        let side: Vec<f32> = samples.iter().skip(channel).step_by(2).copied().collect();
        let mean = side.iter().map(|&s| f64::from(s)).sum::<f64>() / side.len() as f64;
        eprintln!("demo, {name}: DC {mean:.6} over {} samples, RMS {:.2} dB", side.len(), rms_db(&side));
        // 1e-3: -60 dB, a thousandth of full scale; the pulse bass at width 0.4 gave -0.06.
        assert!(mean.abs() < 1e-3, "{name}: DC {mean}");
    }
}
