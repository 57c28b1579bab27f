//! `cargo xtask firmware`: the core on a Cortex-M4F under QEMU.
//!
//! Builds `firmware-sim` for thumbv7em-none-eabihf, runs each of its binaries on QEMU's
//! `mps2-an386` board, decodes the defmt log it writes through semihosting and compares the
//! lines with `firmware-sim/expected/<bin>.out` (`--bless` rewrites them). The `count`
//! binary runs with a TCG plugin (`firmware-sim/plugin/insncount.c`, built here with gcc)
//! that counts the instructions executed in each region it marks; those counts and the
//! binaries' sizes are printed, and written to `target/firmware/`.
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use defmt_decoder::{DecodeError, Table};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind, elf};

use crate::steps::{self, Step};
use crate::{Task, YesArgs, fail, prereq};

/// The Cortex-M4F target the firmware builds for.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The binaries of firmware-sim, each with an expected log.
const BINS: [&str; 2] = ["demo", "count"];

/// The binary run under the instruction-counting plugin.
const COUNT_BIN: &str = "count";

/// Longest a binary may run under QEMU. Each takes about 2 s; a hang must not stall CI.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the plugin, the decoded logs and the reports go, relative to the workspace root.
const OUT_DIR: &str = "target/firmware";

/// The plugin's source, relative to the workspace root.
const PLUGIN_SRC: &str = "firmware-sim/plugin/insncount.c";

/// Marker functions of the count binary (`firmware-sim/src/bin/count.rs`).
const START_MARKER: &str = "synthpool_measure_start";
const STOP_MARKER: &str = "synthpool_measure_stop";

/// Frames per block of the core (`synthpool_core::BLOCK`).
const BLOCK: f64 = 64.0;

/// Arguments of `cargo xtask firmware`.
#[derive(Args)]
pub struct FirmwareArgs {
    /// Rewrite firmware-sim/expected/*.out from this run instead of comparing with them
    #[arg(long)]
    bless: bool,
    #[command(flatten)]
    yes: YesArgs,
}

/// The cargo step that builds the firmware. DEFMT_LOG=info: defmt compiles out every
/// level below `error` unless told otherwise.
pub fn build_step() -> Step {
    Step::cargo(
        "build the firmware (release, Cortex-M4F)",
        &["build", "--release", "-p", "firmware-sim", "--target", TARGET, "--bins"],
    )
    .env("DEFMT_LOG", "info")
}

/// Help text: what the task does, then its prerequisites.
pub fn help() -> String {
    format!(
        "Steps:\n  \
         1. {}\n  \
         2. gcc builds the instruction-counting QEMU plugin ({PLUGIN_SRC})\n  \
         3. qemu-system-arm -machine mps2-an386 runs each binary ({}; `{COUNT_BIN}` with the plugin):\n     \
            its decoded defmt log must equal firmware-sim/expected/<bin>.out (--bless rewrites them)\n  \
         4. prints the sizes and the instruction counts (also in {OUT_DIR}/report.txt)\n\n{}",
        build_step().command_line(),
        BINS.join(", "),
        prereq::help(Task::Firmware)
    )
}

/// `cargo xtask firmware [--bless]`.
pub fn run(root: &Path, args: &FirmwareArgs) -> ExitCode {
    prereq::ensure(Task::Firmware, root, args.yes.yes);
    check(root, args.bless);
    ExitCode::SUCCESS
}

/// Builds and runs the firmware, compares its logs with the expected ones (or rewrites them
/// if `bless`) and prints the report; exits with status 1 on any failure or difference.
/// The prerequisites of [`Task::Firmware`] must be present.
pub fn check(root: &Path, bless: bool) {
    steps::run_all("firmware", &[build_step()]);
    let out_dir = root.join(OUT_DIR);
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| fail(&format!("cannot create {OUT_DIR}: {e}")));
    let plugin = build_plugin(root, &out_dir);

    let mut mismatches = Vec::new();
    let mut sizes = Vec::new();
    let mut counts = None;
    for bin in BINS {
        let elf_path = root.join("target").join(TARGET).join("release").join(bin);
        let elf =
            std::fs::read(&elf_path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", elf_path.display())));
        let counts_path = out_dir.join(format!("{bin}.insns"));
        // Not a stale file from an earlier run if the plugin writes nothing this time.
        let _ = std::fs::remove_file(&counts_path);
        let plugin_arg = (bin == COUNT_BIN).then(|| {
            let (start, stop) = (marker_address(&elf, START_MARKER), marker_address(&elf, STOP_MARKER));
            format!("{},start={start:#x},stop={stop:#x},out={}", plugin.display(), counts_path.display())
        });
        let lines = run_and_decode(bin, &elf_path, &elf, plugin_arg.as_deref());
        std::fs::write(out_dir.join(format!("{bin}.out")), join_lines(&lines))
            .unwrap_or_else(|e| fail(&format!("cannot write {OUT_DIR}/{bin}.out: {e}")));
        if !check_expected(root, bin, &lines, bless) {
            mismatches.push(bin);
        }
        sizes.push((bin, section_sizes(&elf)));
        if bin == COUNT_BIN {
            let text = std::fs::read_to_string(&counts_path)
                .unwrap_or_else(|e| fail(&format!("the plugin wrote no {}: {e}", counts_path.display())));
            counts = Some(instruction_report(&lines, &text));
        }
    }

    let mut report = size_report(&sizes);
    if let Some(counts) = counts {
        report += "\n";
        report += &counts;
    }
    println!("{report}");
    let report_path = out_dir.join("report.txt");
    std::fs::write(&report_path, &report).unwrap_or_else(|e| fail(&format!("cannot write {OUT_DIR}/report.txt: {e}")));
    println!("(also in {OUT_DIR}/report.txt)");

    if !mismatches.is_empty() {
        fail(&format!(
            "the output of {} differs from firmware-sim/expected/ (see above).\n\
             If the change is intended, rewrite the expected logs: cargo xtask firmware --bless",
            mismatches.join(", ")
        ));
    }
}

/// Builds the insncount plugin with gcc into `out_dir` unless it is newer than its source;
/// returns the library's path.
fn build_plugin(root: &Path, out_dir: &Path) -> PathBuf {
    let src = root.join(PLUGIN_SRC);
    let lib = out_dir.join("libinsncount.so");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (modified(&lib), modified(&src))
        && built >= source
    {
        return lib;
    }
    println!("==> build the instruction-counting QEMU plugin");
    let argv = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o"];
    println!("    $ {} {} {PLUGIN_SRC}\n", argv.join(" "), lib.strip_prefix(root).unwrap_or(&lib).display());
    match Command::new(argv[0]).args(&argv[1..]).arg(&lib).arg(&src).status() {
        Ok(status) if status.success() => lib,
        Ok(status) => fail(&format!("gcc failed ({status}) on {PLUGIN_SRC}")),
        Err(e) => fail(&format!("could not start gcc: {e}")),
    }
}

/// Runs `bin` under QEMU (with the plugin if `plugin_arg` is given), checks it exited with
/// status 0 in time, and returns its decoded log lines.
fn run_and_decode(bin: &str, elf_path: &Path, elf: &[u8], plugin_arg: Option<&str>) -> Vec<String> {
    let mut qemu = Command::new("qemu-system-arm");
    qemu.args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"]);
    if let Some(arg) = plugin_arg {
        qemu.args(["-plugin", arg]);
    }
    qemu.arg("-kernel").arg(elf_path);
    let shown: Vec<String> =
        std::iter::once(qemu.get_program()).chain(qemu.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
    println!("==> run `{bin}` under QEMU");
    println!("    $ {}", shown.join(" "));
    let run =
        run_with_timeout(qemu, QEMU_TIMEOUT).unwrap_or_else(|e| fail(&format!("could not start qemu-system-arm: {e}")));
    let decoded = decode(elf, &run.stdout);
    let lines = decoded.as_ref().map(Vec::as_slice).unwrap_or_default();
    let failed = match run.status {
        None => Some(format!("did not finish within {} s", QEMU_TIMEOUT.as_secs())),
        Some(status) if !status.success() => Some(format!("exited with {status}")),
        Some(_) => decoded.as_ref().err().cloned(),
    };
    if let Some(why) = failed {
        for line in lines {
            println!("    | {line}");
        }
        if !run.stderr.trim().is_empty() {
            println!("    qemu's stderr:\n{}", run.stderr);
        }
        fail(&format!("`{bin}` under QEMU {why}"));
    }
    println!("<== `{bin}` ran in {:.2} s and logged {} lines\n", run.took.as_secs_f64(), lines.len());
    decoded.unwrap_or_default()
}

/// What a QEMU run left.
struct Run {
    stdout: Vec<u8>,
    stderr: String,
    /// None if it was killed at the timeout.
    status: Option<ExitStatus>,
    took: Duration,
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> std::io::Result<Run> {
    let start = Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Read both pipes while waiting, or a chatty child blocks on a full pipe.
    let mut stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    });
    let mut stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let stdout = stdout.take().and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Run { stdout, stderr, status, took })
}

/// Decodes the defmt frames in `bytes` against the ELF's table: one line per frame, its
/// level and message (no timestamps or locations: they change with any edit).
fn decode(elf: &[u8], bytes: &[u8]) -> Result<Vec<String>, String> {
    let table = match Table::parse(elf) {
        Ok(Some(table)) => table,
        Ok(None) => return Err("has no .defmt section: was it linked with -Tdefmt.x?".to_owned()),
        Err(e) => return Err(format!("has a defmt table that cannot be read: {e}")),
    };
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame.level().map(|l| l.as_str().to_uppercase()).unwrap_or_default();
                lines.push(format!("{level:<5} {}", frame.display_message()));
            }
            Err(DecodeError::UnexpectedEof) => return Ok(lines),
            Err(DecodeError::Malformed) => {
                return Err(format!("wrote a malformed defmt frame after {} good ones", lines.len()));
            }
        }
    }
}

fn join_lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Compares `lines` with `firmware-sim/expected/<bin>.out`, or writes them there if
/// `bless`; prints what differs. True if they match (or were blessed).
fn check_expected(root: &Path, bin: &str, lines: &[String], bless: bool) -> bool {
    let shown = format!("firmware-sim/expected/{bin}.out");
    let path = root.join(&shown);
    let actual = join_lines(lines);
    if bless {
        std::fs::write(&path, &actual).unwrap_or_else(|e| fail(&format!("cannot write {shown}: {e}")));
        println!("    blessed {shown} ({} lines)\n", lines.len());
        return true;
    }
    let Ok(expected) = std::fs::read_to_string(&path) else {
        println!("    ! {shown} is missing: `cargo xtask firmware --bless` writes it\n");
        return false;
    };
    if expected == actual {
        println!("    {bin}: the log matches {shown}\n");
        return true;
    }
    let expected: Vec<&str> = expected.lines().collect();
    let differing: Vec<usize> = (0..expected.len().max(lines.len()))
        .filter(|&i| expected.get(i).copied() != lines.get(i).map(String::as_str))
        .collect();
    println!("    ! {bin}: {} lines differ from {shown} (- expected, + this run):", differing.len());
    for &i in differing.iter().take(8) {
        println!("    {:>4} - {}", i + 1, expected.get(i).copied().unwrap_or("(no line)"));
        println!("    {:>4} + {}", i + 1, lines.get(i).map(String::as_str).unwrap_or("(no line)"));
    }
    println!("    (whole log: {OUT_DIR}/{bin}.out)\n");
    false
}

/// Address of the first instruction of function `name` (Thumb symbols carry bit 0 set).
fn marker_address(elf: &[u8], name: &str) -> u64 {
    let file = object::File::parse(elf).unwrap_or_else(|e| fail(&format!("cannot parse the firmware ELF: {e}")));
    match file.symbols().find(|s| s.name() == Ok(name)) {
        Some(symbol) => symbol.address() & !1,
        None => fail(&format!("the count binary has no symbol {name}: was the marker inlined or renamed?")),
    }
}

/// Sizes as `size` (Berkeley format) counts them: text is what is allocated read-only (code,
/// constants, vector table), data what is allocated writable with contents (copied from
/// flash at reset), bss what is allocated writable and zeroed.
#[derive(Clone, Copy, Default)]
struct Sizes {
    text: u64,
    data: u64,
    bss: u64,
}

fn section_sizes(elf: &[u8]) -> Sizes {
    let file = object::File::parse(elf).unwrap_or_else(|e| fail(&format!("cannot parse the firmware ELF: {e}")));
    let mut sizes = Sizes::default();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else { continue };
        if sh_flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        if section.kind() == SectionKind::UninitializedData || section.kind() == SectionKind::UninitializedTls {
            sizes.bss += section.size();
        } else if sh_flags & u64::from(elf::SHF_WRITE) != 0 {
            sizes.data += section.size();
        } else {
            sizes.text += section.size();
        }
    }
    sizes
}

fn size_report(sizes: &[(&str, Sizes)]) -> String {
    let mut text = String::from("==> sizes (bytes; as `size` counts them)\n");
    let _ = writeln!(text, "    {:<8} {:>9} {:>9} {:>9}", "binary", "text", "data", "bss");
    for (bin, s) in sizes {
        let _ = writeln!(text, "    {bin:<8} {:>9} {:>9} {:>9}", s.text, s.data, s.bss);
    }
    text + "    Flash holds text + data. The racks and units live on the stack (main's frame), not\n    \
             in data or bss; the mps2-an386 has 4 MiB of RAM for it.\n"
}

/// Pairs the plugin's counts with the `measure LABEL xN` lines of the count log and
/// tabulates them, the markers' own cost (the `overhead` group) subtracted.
fn instruction_report(lines: &[String], counts_text: &str) -> String {
    let counts: Vec<u64> = counts_text
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| fail(&format!("the plugin wrote {l:?}, not a count"))))
        .collect();
    let mut groups: Vec<(&str, Vec<u64>)> = Vec::new();
    let mut next = 0;
    for line in lines {
        let Some(rest) = line.strip_prefix("INFO  measure ") else { continue };
        let Some((label, n)) = rest.rsplit_once(" x") else { fail(&format!("bad measure line: {line}")) };
        let n: usize = n.parse().unwrap_or_else(|_| fail(&format!("bad measure line: {line}")));
        let Some(group) = counts.get(next..next + n) else {
            fail(&format!("the plugin counted {} regions; the log announces more", counts.len()))
        };
        groups.push((label, group.to_vec()));
        next += n;
    }
    if next != counts.len() {
        fail(&format!("the plugin counted {} regions; the log announces {next}", counts.len()));
    }
    let overhead = groups.iter().find(|(label, _)| *label == "overhead").and_then(|(_, c)| c.iter().min().copied());
    let overhead = overhead.unwrap_or_else(|| fail("the count log has no `overhead` group"));

    let mut text = format!(
        "==> instructions executed on the Cortex-M4F (exact, QEMU plugin; the markers' {overhead} subtracted)\n"
    );
    let _ = writeln!(
        text,
        "    {:<20} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "region", "n", "min", "median", "mean", "max", "per sample"
    );
    for (label, counts) in groups.iter().filter(|(label, _)| *label != "overhead") {
        let mut sorted: Vec<u64> = counts.iter().map(|c| c.saturating_sub(overhead)).collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let mean = sorted.iter().sum::<u64>() as f64 / sorted.len() as f64;
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        // A region that renders a block: per frame; per voice and frame for the voice patches.
        let per_sample = if label.ends_with("/setup") {
            String::new()
        } else {
            match voices_in(label) {
                Some(voices) => format!("{:.1} /voice", median as f64 / BLOCK / voices as f64),
                None => format!("{:.1}", median as f64 / BLOCK),
            }
        };
        let _ = writeln!(
            text,
            "    {label:<20} {:>5} {min:>9} {median:>9} {mean:>9.0} {max:>9} {per_sample:>12}",
            sorted.len()
        );
    }
    text + "    A block is 64 frames, 1.333 ms at 48 kHz: 224,000 cycles of a 168 MHz Cortex-M4F. Cycles\n    \
            exceed instructions (loads, branches, divides take 2 or more), so these are lower bounds.\n"
}

/// N of a `voices xN/...` label.
fn voices_in(label: &str) -> Option<u32> {
    label.strip_prefix("voices x")?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pair_with_their_labels() {
        let lines: Vec<String> = ["INFO  start", "INFO  measure overhead x2", "INFO  measure voices x8/process x3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let report = instruction_report(&lines, "10\n10\n5130\n5130\n5140\n");
        let row = report.lines().find(|l| l.contains("voices x8/process")).expect("a row");
        // 5120 after the markers' 10: 80 a frame, 10 a voice and frame.
        assert!(row.contains(" 5120 ") && row.ends_with("10.0 /voice"), "{row}");
    }

    #[test]
    fn voices_come_from_the_label() {
        assert_eq!(voices_in("voices x8/process"), Some(8));
        assert_eq!(voices_in("demo/process"), None);
    }
}
