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
    if let Some(e) = results.get("fx/voice-delay-reverb") {
        fx += &format!(
            "| voice -> delay -> reverb | **{:.2}** ({:.2}-{:.2}) | {:.2}% |\n",
            e.median_ns / 64.0,
            e.low_ns / 64.0,
            e.high_ns / 64.0,
            100.0 * e.median_ns / BUDGET_NS
        );
    }
    let mut units = format!("{header}\n\n| unit | ns per sample, median (95% CI) |\n|---|---:|\n");
    for (id, e) in results.iter().filter(|(id, _)| id.starts_with("unit/")) {
        let name = id.trim_start_matches("unit/").trim_end_matches("/block64");
        units += &format!("| {name} | {:.2} ({:.2}-{:.2}) |\n", e.median_ns / 64.0, e.low_ns / 64.0, e.high_ns / 64.0);
    }
    vec![("voice", voice), ("fx", fx), ("units", units)]
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
