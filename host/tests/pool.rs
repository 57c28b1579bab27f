//! The pool with real worker processes (cargo builds `synthpool-worker` for these tests).
use std::path::PathBuf;
use std::time::Duration;
use synthpool_core::BLOCK;
use synthpool_host::engine::Engine;
use synthpool_host::ledger::Ledger;
use synthpool_host::pool::{Pool, PoolConfig};
use synthpool_host::render::render_script;
use synthpool_host::server::{DEMO_SCRIPT, render_with};

fn pool(workers: usize) -> Pool {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_synthpool-worker"));
    Pool::start(&PoolConfig { workers, sample_rate_hz: 48_000, worker_exe: Some(exe) }).unwrap().0
}

fn peak_db(x: &[f32]) -> f32 {
    20.0 * x.iter().fold(0.0f32, |m, s| m.max(s.abs())).log10()
}

fn diff_peak_db(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    peak_db(&d)
}

#[test]
fn two_workers_each_play_their_own_module() {
    let pool = pool(2);
    let mut ledger = Ledger::new(2);
    let script = "/module/new vco 1\n/module/set 1 wave sine\n/module/set 1 freq 441\n/patch 1 out 0 in\n\
                  /module/new vco 2\n/module/set 2 wave sine\n/module/set 2 freq 882\n/patch 2 out 0 in\n";
    for line in script.lines() {
        let (_, request) = synthpool_core::script::parse_line(line, 0.0).unwrap();
        ledger.submit_with(&[request.unwrap()], |commands| pool.send_together(commands)).unwrap();
    }
    assert_ne!(ledger.owner(1), ledger.owner(2), "two unconnected voices go to two workers");
    let mut out = [0.0; BLOCK];
    let mut all = Vec::new();
    for block in 0..200 {
        let late = pool.render_block(&mut out, Duration::from_secs(2));
        assert_eq!(late, 0, "block {block}: {:?}", pool.status());
        all.extend_from_slice(&out);
    }
    // Both full-scale sines: the sum peaks near 2 (in phase every 1/441 s).
    let peak = all[BLOCK * 4..].iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 1.5 && peak <= 2.0, "peak {peak}");
    let status = pool.status();
    assert!(status.iter().all(|s| s.pid != 0 && s.blocks >= 200));
    assert_ne!(status[0].pid, status[1].pid);
}

#[test]
fn one_worker_renders_the_demo_exactly_as_the_rack_in_process() {
    let pool = pool(1);
    let (through_pool, refused) = render_with(&pool, DEMO_SCRIPT, 4.0).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    let (in_process, problems) = render_script(DEMO_SCRIPT, 4.0, 48_000);
    assert!(problems.is_empty());
    assert_eq!(through_pool.len(), in_process.len());
    assert!(peak_db(&in_process) > -20.0);
    assert!(through_pool == in_process, "differ by {} dB", diff_peak_db(&through_pool, &in_process));
}

#[test]
fn two_workers_render_the_demo_as_one_does_up_to_summation_order() {
    let (one, _) = render_with(&pool(1), DEMO_SCRIPT, 3.0).unwrap();
    let (two, _) = render_with(&pool(2), DEMO_SCRIPT, 3.0).unwrap();
    // Workers' blocks are summed in another order than one rack sums its cables: f32
    // rounding differences only, ~-130 dB.
    assert!(diff_peak_db(&one, &two) < -100.0, "{}", diff_peak_db(&one, &two));
}
