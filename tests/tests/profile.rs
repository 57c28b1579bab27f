//! `synthpool profile`, as `cargo xtask profile` runs it: the table and the picture, and
//! that a profiler attached to a render leaves its samples exactly as they were.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use synthpool_tests::*;

fn synthpool() -> Command {
    Command::new(server_binary())
}

/// The table's worker rows: (worker, blocks, share %, modules).
fn rows(table: &str) -> Vec<(usize, u64, f64, usize)> {
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let head: Vec<&str> = cells.first()?.split_whitespace().collect();
            let worker = head.first()?.parse().ok()?;
            let blocks = head.get(2)?.parse().ok()?;
            let share = cells.get(2)?.trim_end_matches('%').parse().ok()?;
            let modules = cells.get(5)?.parse().ok()?;
            Some((worker, blocks, share, modules))
        })
        .collect()
}

#[test]
fn profile_prints_a_row_per_worker_and_writes_an_svg() {
    let _machine = exclusive();
    let out = scratch("profile");
    let script = root().join("demo/load.osc");
    let output = synthpool()
        .args(["profile", "--workers", "2", "--seconds", "2", "--script"])
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("synthpool profile runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let table = std::fs::read_to_string(out.join("profile.txt")).expect("the table is kept");
    let rows = rows(&table);
    assert_eq!(rows.len(), 2, "{table}");
    for &(worker, blocks, share, modules) in &rows {
        // 2 s at 750 blocks a second; the null sink's pacing and start-up leave a margin.
        assert!(blocks > 500, "worker {worker}: {table}");
        assert!(share > 0.0 && share < 100.0, "worker {worker}: {table}");
        assert!(modules > 50, "the load script spreads over both workers: {table}");
    }
    let svg = out.join("profile.svg");
    assert!(stdout.contains(&format!("picture: {}", svg.display())), "{stdout}");
    let text = std::fs::read_to_string(&svg).expect("the picture exists");
    assert!(text.starts_with("<svg") && text.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(text.trim_end().ends_with("</svg>"));
}

/// The `/proc/PID/fd` entry of `pid`'s region, once it has one.
fn region_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_link(p).is_ok_and(|t| t.as_os_str() == "/memfd:synthpool (deleted)"))
}

fn render(out: &Path) -> std::process::Child {
    synthpool()
        .args(["render", "--workers", "2", "--seconds", "12", "--script"])
        .arg(root().join("demo/load.osc"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .spawn()
        .expect("synthpool render starts")
}

#[test]
fn attaching_the_profiler_does_not_change_a_single_sample() {
    let _machine = exclusive();
    let dir = scratch("profile-attach");
    let (alone, watched) = (dir.join("alone.wav"), dir.join("watched.wav"));
    assert!(render(&alone).wait().expect("render").success());

    let mut child = render(&watched);
    assert!(wait_for(Duration::from_secs(10), || region_of(child.id()).is_some()), "the render's region appears");
    let profiler = synthpool()
        .args(["profile", "--attach", &child.id().to_string(), "--seconds", "60", "--out"])
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("synthpool profile --attach starts");
    assert!(child.wait().expect("render").success());
    // The render has ended (and is reaped): the profiler sees it gone and reports.
    let report = profiler.wait_with_output().expect("the profiler ends");
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{stdout}");
    assert!(rows(&stdout).iter().any(|r| r.1 > 0), "the profiler saw blocks while attached: {stdout}");

    let (a, b) = (read_wav(&alone), read_wav(&watched));
    assert_eq!(a.len(), b.len());
    assert!(peak_db(&a) > -40.0, "the load is heard");
    let differing = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    assert_eq!(differing, 0, "samples that differ with the profiler attached");
}
