//! Reads criterion's results and rewrites BENCHMARKS.md's measured tables in one go.
//!
//! Each table sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers; prose
//! around them is kept. Figures are criterion's medians with their 95% confidence interval,
//! all from the run that just finished, with the machine, date and commit above them.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One benchmark's median time per iteration and its 95% confidence interval, ns.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    pub median_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
}

/// Every criterion result under `target/criterion`, by full id (`voice/saw-vcf-vca-adsr/16`).
pub fn read_criterion(root: &Path) -> BTreeMap<String, Estimate> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.join("target/criterion")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let estimates = path.with_file_name("estimates.json");
                if let (Some(id), Some(estimate)) = (full_id(&path), median(&estimates)) {
                    found.insert(id, estimate);
                }
            }
        }
    }
    found
}

fn full_id(benchmark_json: &Path) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(benchmark_json).ok()?).ok()?;
    Some(json.get("full_id")?.as_str()?.to_owned())
}

fn median(estimates_json: &Path) -> Option<Estimate> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(estimates_json).ok()?).ok()?;
    let median = json.get("median")?;
    let ci = median.get("confidence_interval")?;
    Some(Estimate {
        median_ns: median.get("point_estimate")?.as_f64()?,
        low_ns: ci.get("lower_bound")?.as_f64()?,
        high_ns: ci.get("upper_bound")?.as_f64()?,
    })
}

/// "Intel(R) Xeon(R) Processor, 2 cores, Linux 6.1" and the like.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = output("uname", &["-sr"]).unwrap_or_default();
    format!("{cpu}, {cores} cores, {kernel}")
}

/// `2026-11-26, commit abc1234` (with `+dirty` when the tree has uncommitted changes).
pub fn provenance(root: &Path) -> String {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let commit = output_in(root, "git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        output_in(root, "git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!("{date}, commit {commit}{}", if dirty { "+dirty" } else { "" })
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn output_in(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).current_dir(dir).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The block budget: 64 frames at 48 kHz, ns.
const BUDGET_NS: f64 = 64.0 / 48_000.0 * 1e9;

/// Markdown tables for the core's benchmarks, by marker name.
pub fn core_tables(results: &BTreeMap<String, Estimate>, header: &str) -> Vec<(&'static str, String)> {
    let mut voice = format!(
        "{header}\n\n| voices | ns per voice-sample, median (95% CI) | block time, median | share of the 1.333 ms block |\n|---:|---:|---:|---:|\n"
    );
    for n in [1usize, 16, 64, 256] {
        if let Some(e) = results.get(&format!("voice/saw-vcf-vca-adsr/{n}")) {
            let per = |ns: f64| ns / (64 * n) as f64;
            voice += &format!(
                "| {n} | **{:.2}** ({:.2}-{:.2}) | {:.1} us | {:.1}% |\n",
                per(e.median_ns),
                per(e.low_ns),
                per(e.high_ns),
                e.median_ns / 1e3,
                100.0 * e.median_ns / BUDGET_NS
            );
        }
    }
    let mut fx =
        format!("{header}\n\n| patch | ns per sample, median (95% CI) | share of the block |\n|---|---:|---:|\n");
    for (id, patch) in [
        ("fx/voice-delay-reverb", "voice -> delay -> reverb"),
        ("fx/stereo-voice-pingpong-reverb", "stereo: voice -> ping-pong delay -> stereo reverb, both sides"),
    ] {
        if let Some(e) = results.get(id) {
            fx += &format!(
                "| {patch} | **{:.2}** ({:.2}-{:.2}) | {:.2}% |\n",
                e.median_ns / 64.0,
                e.low_ns / 64.0,
                e.high_ns / 64.0,
                100.0 * e.median_ns / BUDGET_NS
            );
        }
    }
    let mut units = format!("{header}\n\n| unit | ns per sample, median (95% CI) |\n|---|---:|\n");
    for (id, e) in results.iter().filter(|(id, _)| id.starts_with("unit/")) {
        let name = id.trim_start_matches("unit/").trim_end_matches("/block64");
        units += &format!("| {name} | {:.2} ({:.2}-{:.2}) |\n", e.median_ns / 64.0, e.low_ns / 64.0, e.high_ns / 64.0);
    }
    vec![("voice", voice), ("fx", fx), ("units", units)]
}

/// The cost of per-module timing (issue 6) on 60 standard voices, from the `timing/` group.
pub fn timing_table(results: &BTreeMap<String, Estimate>, header: &str) -> Option<(&'static str, String)> {
    let base = results.get("timing/60-voices/untimed")?;
    let mut table = format!(
        "{header}\n\n| 60 voices, one rack | block time, median (95% CI) | cost over untimed |\n|---|---:|---:|\n"
    );
    for (mode, what) in [
        ("untimed", "untimed (`Rack::process`)"),
        ("every-block", "every block timed"),
        ("every-64th", "one block in 64 timed (the workers)"),
    ] {
        let e = results.get(&format!("timing/60-voices/{mode}"))?;
        table += &format!(
            "| {what} | **{:.1} us** ({:.1}-{:.1}) | {:+.1}% |\n",
            e.median_ns / 1e3,
            e.low_ns / 1e3,
            e.high_ns / 1e3,
            100.0 * (e.median_ns / base.median_ns - 1.0)
        );
    }
    Some(("timing", table))
}

/// The server table (issue 3) from `target/server-bench.json`, beside the Python prototype's
/// figures and the targets; None when the server bench has not run.
pub fn server_table(root: &Path, header: &str) -> Option<(&'static str, String)> {
    let text = std::fs::read_to_string(root.join("target/server-bench.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pair = |key: &str| -> Option<(f64, f64)> {
        let v = json.get(key)?.as_array()?;
        Some((v.first()?.as_f64()?, v.get(1)?.as_f64()?))
    };
    let (cold50, cold99) = pair("cold_start_us")?;
    let (ready50, ready99) = pair("pool2_ready_us")?;
    let (rtt50, rtt99) = pair("handoff_rtt_us")?;
    let (in50, in99) = pair("handoff_server_us").unwrap_or((f64::NAN, f64::NAN));
    let (block50, block99) = pair("block_overhead_us")?;
    let speedup = json.get("speedup_2_over_1")?.as_f64()?;
    let (low, high) = pair("speedup_quartiles").unwrap_or((f64::NAN, f64::NAN));
    let rounds = json.get("rounds").and_then(serde_json::Value::as_u64).unwrap_or(1);
    let (block1, block2) = (
        json.get("block_1_us").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN),
        json.get("block_2_us").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN),
    );
    let voices = json.get("heavy_voices").and_then(serde_json::Value::as_u64).unwrap_or(60);
    // The shared bus (issue 12): N voices, each also into one delay -> reverb, over links.
    let mut bus_rows = String::new();
    for n in [30, 400, 800] {
        let Some(ratio) = json.get(format!("bus_{n}_speedup")).and_then(serde_json::Value::as_f64) else { continue };
        let (low, high) = pair(&format!("bus_{n}_quartiles")).unwrap_or((f64::NAN, f64::NAN));
        let block = |k: &str| json.get(format!("bus_{n}_{k}")).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        bus_rows += &format!(
            "| speed-up, 2 workers vs 1, shared bus: {n} standard voices each also into one delay -> reverb, \
             same rounds | 0.91x before links | >= 1.8x | **{ratio:.2}x** (quartiles {low:.2}-{high:.2}x; {:.0} us a \
             block on 1 worker, {:.0} us on 2) |\n",
            block("block_1_us"),
            block("block_2_us")
        );
    }
    // Light patches (issue 12): CPU per sample through a pool of one worker, offline.
    let mut light_rows = String::new();
    for (key, patch, target) in [
        ("light_fx_ns", "one voice -> delay -> reverb (the fx patch)", "within 2x"),
        ("light_voices64_ns", "64 standard voices", "within 1.3x"),
    ] {
        let Some(v) = json.get(key).and_then(serde_json::Value::as_array) else { continue };
        let at = |k: usize| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        let (alone, inline, processes) = (at(0), at(1), at(2));
        light_rows += &format!(
            "| CPU per sample, {patch}, rendered offline through 1 worker, against the rack alone ({alone:.1} ns) \
             | - | {target} | **{inline:.1} ns = {:.2}x** (the worker process rendering it: {processes:.1} ns = \
             {:.2}x) |\n",
            inline / alone,
            processes / alone
        );
    }
    // Edits as the patch grows (issue 12: within 2x).
    let edit_row = match (pair("edit_new_us"), json.get("edit_modules").and_then(serde_json::Value::as_u64)) {
        (Some((small, large)), Some(modules)) => format!(
            "| `/module/new` handled in the server, into a patch of {modules} modules vs of 10 | - | within 2x | \
             **{large:.2} us vs {small:.2} us = {:.2}x** |\n",
            large / small
        ),
        _ => String::new(),
    };
    let rss = json.get("idle_rss_kib")?.as_u64()?;
    let private = json.get("idle_private_kib")?.as_u64()?;
    let budget_us = BUDGET_NS / 1e3;
    let table = format!(
        "{header}\n\n| figure | prototype | target | synthpool, median (p99) |\n|---|---:|---:|---:|\n\
         | worker cold start (exec to ready) | 848 ms | < 3 ms | **{:.2} ms** ({:.2} ms) |\n\
         | pool of 2 workers ready, memory mapped | 841 ms | < 20 ms | **{:.2} ms** ({:.2} ms) |\n\
         | command hand-off in the server (datagram in to queued, /done sent) | 57 us round trip | < 20 us | **{in50:.1} us** ({in99:.1} us) |\n\
         | the same as a UDP round trip from a client on loopback (two thread wakes more) | 57 us | - | **{rtt50:.1} us** ({rtt99:.1} us) |\n\
         | OSC message to changed output | 9-16 ms | at most one block after the block in flight | tested: `a_set_to_220_hz_lands_within_one_block_of_the_block_in_flight` |\n\
         | speed-up, 2 workers vs 1, {voices} standard voices built, then rendered offline in {rounds} alternating rounds, 2 cores | 1.17x | >= 1.9x | **{speedup:.2}x** (quartiles {low:.2}-{high:.2}x; {block1:.0} us a block on 1 worker, {block2:.0} us on 2) |\n\
         {bus_rows}\
         {light_rows}\
         {edit_row}\
         | memory per idle worker (largest of 2) | ~50 MB | < 2 MB RSS, < 1 MB private | **{:.2} MB RSS, {:.2} MB private** |\n\
         | pool overhead per block (2 idle workers: none is woken) | - | - | **{block50:.1} us = {:.1}%** of the block ({block99:.1} us = {:.1}%) |\n",
        cold50 / 1e3,
        cold99 / 1e3,
        ready50 / 1e3,
        ready99 / 1e3,
        rss as f64 / 1024.0,
        private as f64 / 1024.0,
        100.0 * block50 / budget_us,
        100.0 * block99 / budget_us,
    );
    Some(("server", table))
}

/// The reliability table (issue 4) from `target/server-bench.json`: crash recovery, the
/// flood rate held, memory across the flood; None when the server bench has not run.
pub fn reliability_table(root: &Path, header: &str) -> Option<(&'static str, String)> {
    let text = std::fs::read_to_string(root.join("target/server-bench.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let recovery = json.get("recovery_us")?.as_array()?;
    let (rec50, rec99) = (recovery.first()?.as_f64()?, recovery.get(1)?.as_f64()?);
    let kills = json.get("kills")?.as_u64()?;
    let answered = json.get("flood_answered_per_s")?.as_f64()?;
    let sent = json.get("flood_sent_per_s")?.as_f64()?;
    let rss = json.get("flood_rss_delta_kib")?.as_i64()?;
    let table = format!(
        "{header}\n\n| figure | prototype | target | synthpool, median (p99) |\n|---|---:|---:|---:|\n\
         | worker kill -9 to replacement ready ({kills} kills) | whole pool recreated | sound again within 20 ms | **{:.2} ms** ({:.2} ms) |\n\
         | flood: messages answered per second (one sender at {:.0}k/s) | - | 100k/s held | **{:.0}k/s** |\n\
         | memory after the flood minus before (bench process) | - | a page or two | **{rss} KiB** |\n\
         | allocations on the audio path, 10,500 blocks with commands flowing | - | 0 | **0** (test `ten_thousand_blocks_with_commands_flowing_allocate_nothing_on_the_audio_path`) |\n",
        rec50 / 1e3,
        rec99 / 1e3,
        sent / 1e3,
        answered / 1e3,
    );
    Some(("reliability", table))
}

/// Replaces the text between each table's markers in `doc` (appending marked sections
/// that are missing).
pub fn splice(doc: &str, tables: &[(&str, String)]) -> String {
    let mut doc = doc.to_owned();
    for (name, table) in tables {
        let (open, close) = (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"));
        let block = format!("{open}\n{}\n{close}", table.trim_end());
        match (doc.find(&open), doc.find(&close)) {
            (Some(start), Some(end)) if end > start => doc.replace_range(start..end + close.len(), &block),
            _ => doc = format!("{}\n\n{block}\n", doc.trim_end()),
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_between_markers_and_keeps_prose() {
        let doc = "# B\nintro\n<!-- bench:voice -->\nold\n<!-- /bench:voice -->\nafter\n";
        let out = splice(doc, &[("voice", "new table\n".into()), ("fx", "fx table".into())]);
        assert_eq!(
            out,
            "# B\nintro\n<!-- bench:voice -->\nnew table\n<!-- /bench:voice -->\nafter\n\n<!-- bench:fx -->\nfx table\n<!-- /bench:fx -->\n"
        );
    }
}
