//! The profiler's figures against a real pool (cargo builds `synthpool-worker` for these
//! tests): consistency, not speed. One test only: the profiler finds this process's region
//! by its memfd, and a second pool in the process would make that ambiguous.
use std::path::PathBuf;
use synthpool_host::engine::Engine;
use synthpool_host::pool::{Pool, PoolConfig};
use synthpool_host::profile::{Recorder, find_region, write_svg};
use synthpool_host::server::render_with;
use synthpool_host::shm::{Region, TIMING_SLOTS};
use synthpool_host::worker::TIME_MODULES_EVERY;

/// 24 filtered voices summed through a chain of mixers: one component, so placement puts
/// all 80 modules on one worker and leaves the other idle.
fn heavy_script() -> String {
    let mut lines = Vec::new();
    for m in 0..8 {
        let mixer = 900 + m;
        lines.push(format!("/module/new mixer {mixer}"));
        for k in 0..3 {
            let v = m * 3 + k;
            let (vco, vcf, vca) = (100 + v, 200 + v, 300 + v);
            lines.extend([
                format!("/module/new vco {vco}"),
                format!("/module/set {vco} freq {}", 55 + 20 * v),
                format!("/module/new vcf {vcf}"),
                format!("/module/new vca {vca}"),
                format!("/module/set {vca} gain 0.03"),
                format!("/patch {vco} out {vcf} in"),
                format!("/patch {vcf} out {vca} in"),
                format!("/patch {vca} out {mixer} in{}", k + 1),
            ]);
        }
        if m > 0 {
            lines.push(format!("/patch {} out {mixer} in4", mixer - 1));
        }
    }
    lines.push("/patch 907 out 0 in".into());
    lines.join("\n")
}

#[test]
fn a_heavy_worker_shows_a_larger_share_and_its_modules_fit_in_its_block_time() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_synthpool-worker"));
    let pool =
        Pool::start(&PoolConfig { workers: 2, sample_rate_hz: 48_000, worker_exe: Some(exe), inline: true }).unwrap().0;
    // 975 blocks: fewer than the rings hold, so the block times and the module counts cover
    // the same blocks.
    let (samples, refused) = render_with(&pool, &heavy_script(), 1.3).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(samples.iter().any(|s| s.abs() > 0.01));
    let blocks = samples.len() / (synthpool_core::BLOCK * synthpool_core::block::CHANNELS);
    assert!(blocks < TIMING_SLOTS);

    let region = Region::attach_read_only(&find_region(std::process::id()).unwrap()).unwrap();
    assert_eq!(region.workers(), 2);
    let recorder = Recorder::start(region.control(), region.workers(), true);
    let profile = recorder.summary();
    let (heavy, idle) =
        if profile[0].user_modules() > 0 { (&profile[0], &profile[1]) } else { (&profile[1], &profile[0]) };
    assert_eq!((heavy.user_modules(), idle.user_modules()), (80, 0), "one component, one worker");
    assert!(profile.iter().all(|w| w.missed == 0), "{profile:?}");
    // The heavy worker renders every block; the idle one only those in which a command
    // came (its share of the patch's bundles): with nothing to do, it is not woken.
    assert_eq!(heavy.blocks, blocks as u64, "{heavy:?}");
    assert!(idle.blocks < blocks as u64 / 2, "{idle:?}");

    // The heavy worker renders 80 modules each block, the idle one its output alone in a
    // few: its share of the recording's budget is many times larger.
    assert!(heavy.share > 10.0 * idle.share, "heavy {heavy:?}\nidle {idle:?}");
    assert!(heavy.p50_us <= heavy.p99_us && heavy.p99_us <= heavy.max_us);
    assert!(heavy.wake_p50_us <= heavy.wake_p99_us);

    // Per timed block, the modules' charges lie between the worker's two clock readings:
    // their means add up to at most the timed blocks' mean (0.1%: the ring's and the
    // counters' whole-ns rounding), and to most of it (the rack's own work, commands and
    // the output copy are a minority of 80 modules' work).
    let modules_ns: f64 = heavy.modules.iter().map(|m| m.mean_ns).sum();
    let timed_ns = heavy.timed_mean_us * 1e3;
    assert!(modules_ns <= timed_ns * 1.001, "modules {modules_ns} ns > block {timed_ns} ns");
    assert!(modules_ns > 0.3 * timed_ns, "modules {modules_ns} ns of block {timed_ns} ns");
    let timed_blocks = blocks.div_ceil(TIME_MODULES_EVERY as usize) as u32;
    assert!(heavy.modules.iter().all(|m| m.blocks.abs_diff(timed_blocks) <= 1), "{:?}", heavy.modules);
    let module_shares: f64 = heavy.modules.iter().map(|m| m.share).sum();
    assert!(module_shares * synthpool_host::profile::budget_ns(48_000) <= timed_ns * 1.001);

    // /module/stats reads the same counters.
    let top = heavy.modules[0];
    let time = pool.module_time(heavy.index, top.id).unwrap();
    assert_eq!((time.blocks, time.mean_ns), (top.blocks, top.mean_ns));

    // The picture: an SVG document.
    let dir = std::env::temp_dir().join(format!("synthpool-profile-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("profile.svg");
    write_svg(&svg, &recorder, &profile).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("xmlns=\"http://www.w3.org/2000/svg\""), "{}", &text[..80]);
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches('<').count(), text.matches('>').count(), "every tag closed");
    assert!(text.contains("budget 1333 us"));
    let _ = std::fs::remove_dir_all(&dir);
}
