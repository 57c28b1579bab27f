//! The pool with real worker processes (cargo builds `synthpool-worker` for these tests).
use std::path::PathBuf;
use std::time::Duration;
use synthpool_core::BLOCK;
use synthpool_core::block::STEREO_SILENCE;
use synthpool_core::measure::{diff_peak_db, peak_db};
use synthpool_host::engine::Engine;
use synthpool_host::ledger::Ledger;
use synthpool_host::pool::{Pool, PoolConfig};
use synthpool_host::render::render_script;
use synthpool_host::server::{DEMO_SCRIPT, render_with};

fn pool(workers: usize) -> Pool {
    pool_with(workers, true)
}

/// A pool whose audio thread renders worker 0's rack itself (`inline`), or leaves every
/// lane to the worker processes.
fn pool_with(workers: usize, inline: bool) -> Pool {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_synthpool-worker"));
    Pool::start(&PoolConfig { workers, sample_rate_hz: 48_000, worker_exe: Some(exe), inline }).unwrap().0
}

/// Queues `script`'s lines through `ledger`, each as it would come over OSC.
fn build(pool: &Pool, ledger: &mut Ledger, script: &[&str]) {
    for line in script {
        let (_, request) = synthpool_core::script::parse_line(line, 0.0).unwrap();
        ledger.submit_with(&[request.unwrap()], |commands| pool.send_together(commands)).unwrap();
    }
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
    let mut out = STEREO_SILENCE;
    let mut all = Vec::new();
    for block in 0..200 {
        let late = pool.render_block(&mut out, Duration::from_secs(2));
        assert_eq!(late, 0, "block {block}: {:?}", pool.status());
        all.extend_from_slice(&out[0]);
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
    let (in_process, problems) = render_script(DEMO_SCRIPT, 4.0, 48_000, &[]);
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

/// Renders `blocks` blocks; returns them and how many had a worker late.
fn play(pool: &Pool, blocks: usize) -> (Vec<f32>, usize) {
    let mut out = STEREO_SILENCE;
    let mut all = Vec::new();
    let mut late_blocks = 0;
    for _ in 0..blocks {
        late_blocks += usize::from(pool.render_block(&mut out, Duration::from_secs(2)) > 0);
        all.extend_from_slice(&out[0]);
    }
    (all, late_blocks)
}

#[test]
fn a_dead_worker_s_rack_rebuilt_from_the_ledger_plays_the_patch_again() {
    // Every lane a process's: worker 0's death silences its share (with the audio thread
    // rendering it, nothing would be heard; see the next test).
    let pool = pool_with(1, false);
    let mut ledger = Ledger::new(1);
    build(
        &pool,
        &mut ledger,
        &["/module/new vco 1", "/module/set 1 wave square", "/module/set 1 level 0.5", "/patch 1 out 0 in"],
    );
    let (before, _) = play(&pool, 50);
    assert!(peak_db(&before[BLOCK * 10..]) > -7.0, "the square plays");
    // Dead between blocks or not, the rebuild path clears the rack and queues the ledger's
    // commands for it: what the supervisor does for a worker that died mid-change.
    pool.kill(0);
    let death = loop {
        if let Some(death) = pool.wait_for_death(Duration::from_millis(100)) {
            break death;
        }
    };
    assert_eq!(death.index, 0);
    let (gap, _) = play(&pool, 5);
    assert!(gap.iter().all(|&s| s == 0.0), "a dead worker's share is silence, not a stall");
    pool.relaunch(0, Some(&ledger.worker_commands(0))).unwrap();
    let (after, late) = play(&pool, 50);
    assert_eq!(late, 0, "{:?}", pool.status());
    let first = after.iter().position(|&s| s != 0.0).expect("the patch plays again");
    // The replacement's first block fades in: no step larger than the square's own edges
    // (0.5 peak to peak is 1.0; band-limited, a little less) at its return.
    let return_step =
        after[first.saturating_sub(1)..first + BLOCK].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    assert!(return_step <= 1.05, "step {return_step} where it returns");
    assert!(peak_db(&after[first + BLOCK * 10..]) > -7.0, "the square plays at its level again");
    assert_eq!(pool.status()[0].restarts, 1);
}

#[test]
fn the_audio_thread_s_own_lane_plays_through_its_standing_by_worker_s_death() {
    let pool = pool(2);
    let mut ledger = Ledger::new(2);
    build(
        &pool,
        &mut ledger,
        &["/module/new vco 1", "/module/set 1 wave sine", "/module/set 1 freq 441", "/patch 1 out 0 in"],
    );
    assert_eq!(ledger.owner(1), Some(0), "the first voice goes to worker 0");
    let (before, late) = play(&pool, 50);
    assert_eq!(late, 0);
    assert!(peak_db(&before[BLOCK * 10..]) > -1.0, "the sine plays");
    let status = pool.status();
    assert!(status[0].inline && !status[1].inline, "{status:?}");
    // Worker 1 has nothing to do: it is not woken (its block count stays where it was).
    let idle_blocks = status[1].blocks;
    pool.kill(0);
    let death = loop {
        if let Some(death) = pool.wait_for_death(Duration::from_millis(100)) {
            break death;
        }
    };
    assert_eq!(death.index, 0);
    let (without, _) = play(&pool, 20);
    pool.relaunch(0, None).unwrap();
    let (after, late) = play(&pool, 20);
    assert_eq!(late, 0);
    let all: Vec<f32> = [&before[..], &without[..], &after[..]].concat();
    // One unbroken sine: no gap and no step where the process died or came back, so no
    // step larger than the sine's own (steady from block 10; 1% for float rounding).
    let largest_step = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    let steady = largest_step(&before[BLOCK * 10..]);
    let step = largest_step(&all[BLOCK * 10..]);
    assert!(step <= steady * 1.01, "largest step {step}, the sine's own {steady}");
    assert!(peak_db(&without) > -1.0 && peak_db(&after) > -1.0);
    let status = pool.status();
    assert_eq!(status[0].restarts, 1);
    assert!(status[0].inline);
    assert_eq!(status[1].blocks, idle_blocks, "the idle worker slept throughout");
}
