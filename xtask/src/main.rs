//! `cargo xtask`: the one entry point to synthpool. On a fresh Debian 12 or Raspberry
//! Pi OS, `cargo xtask demo` and `cargo xtask test` install what they need and run.

mod firmware;
mod pi;
mod prereq;
mod report;
mod steps;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use prereq::VENV;
use steps::Step;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "synthpool's tasks: each installs what it needs, then runs",
    after_help = "Start with `cargo xtask demo`, then `cargo xtask test`.\n\
                  `cargo xtask help <TASK>` or `cargo xtask <TASK> --help` for the details.",
    arg_required_else_help = true,
    subcommand_value_name = "TASK",
    subcommand_help_heading = "Tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the server playing the demo patch (on the default audio device, else an announced null sink), recording it
    #[command(after_help = prereq::help(Task::Demo))]
    Demo(DemoArgs),
    /// Build, lint and test everything: what CI runs
    #[command(after_help = test_help())]
    Test(YesArgs),
    /// Time the DSP units and patches with criterion
    Bench(BenchArgs),
    /// Run the core on a Cortex-M4F under QEMU against firmware-sim/expected/
    #[command(after_help = firmware::help())]
    Firmware(firmware::FirmwareArgs),
    /// Time each worker core and module: a table per core and a picture (target/profile/profile.svg)
    #[command(after_help = profile_help())]
    Profile(ProfileArgs),
}

#[derive(Args)]
struct YesArgs {
    /// Install missing Debian packages without asking (also when stdin is not a terminal)
    #[arg(long, short)]
    yes: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// How long the server plays, in seconds (the demo's score is 32 s)
    #[arg(long, value_name = "S", default_value = "32", value_parser = positive_seconds, allow_negative_numbers = true)]
    seconds: f64,
    /// WAV file the server records what it plays to, relative to the current directory
    #[arg(long, value_name = "FILE", default_value = "demo.wav")]
    out: PathBuf,
    #[command(flatten)]
    yes: YesArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Passed to criterion, e.g. a filter: `cargo xtask bench -- vcf`
    #[arg(last = true, value_name = "CRITERION ARGS")]
    criterion: Vec<String>,
}

#[derive(Args)]
struct ProfileArgs {
    /// Worker processes of the server it starts [default: one per core]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// How long to record, in seconds
    #[arg(long, value_name = "S", default_value = "10", value_parser = positive_seconds, allow_negative_numbers = true)]
    seconds: f64,
    /// The load script the server plays, relative to the current directory
    #[arg(long, value_name = "FILE", default_value = "demo/load.osc")]
    script: PathBuf,
    /// Read a running synthpool's timings (read-only) instead of starting one
    #[arg(long, value_name = "PID")]
    attach: Option<u32>,
    /// Refresh the table once a second until Ctrl-C
    #[arg(long)]
    live: bool,
}

fn profile_help() -> String {
    "Builds the server (release) and runs `synthpool profile`: without --attach it starts the\n\
     server with null audio and a fresh patch (state in target/profile/state) playing the load\n\
     script, records, and stops it. Each worker's row: blocks, block time p50/p99/max in us,\n\
     mean share of the 1.333 ms budget (64 frames at 48 kHz), late blocks, wake latency\n\
     p50/p99, modules, and the three costliest modules with their share. The same figures\n\
     come back over OSC in /status (per worker) and /module/stats i:id (per module)."
        .to_owned()
}

/// The tasks that check prerequisites; see [`prereq::PREREQS`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Demo,
    Test,
    Bench,
    Firmware,
}

impl Task {
    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Demo => "demo",
            Task::Test => "test",
            Task::Bench => "bench",
            Task::Firmware => "firmware",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Relative paths the user typed (--out) mean the directory they typed them in.
    let invoked_in = std::env::current_dir().unwrap_or_else(|err| fail(&format!("no current directory: {err}")));
    let root = workspace_root();
    if let Err(err) = std::env::set_current_dir(&root) {
        fail(&format!("cannot enter the workspace root {}: {err}", root.display()));
    }
    match cli.task {
        Cmd::Demo(args) => demo(&root, &invoked_in, &args),
        Cmd::Test(args) => test(&root, &args),
        Cmd::Bench(args) => bench(&root, &args),
        Cmd::Firmware(args) => firmware::run(&root, &args),
        Cmd::Profile(args) => profile(&root, &invoked_in, &args),
    }
}

/// The steps of `cargo xtask test`, in order; the first failure stops the run.
#[rustfmt::skip]
fn test_steps(root: &Path) -> Vec<Step> {
    let (worker, worker_exe) = worker::build(root, "debug");
    let mut steps = vec![
        // No `std` exists for thumbv7em-none-eabihf: this fails if the core reaches for it.
        Step::cargo("core builds for Cortex-M4F (no_std)", &["build", "-p", "synthpool-core", "--target", "thumbv7em-none-eabihf"]),
        Step::cargo("clippy on the workspace", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        // 16 MiB stacks: tests keep whole fixed-size racks on their threads' stacks.
        // .venv/bin first: the end-to-end tests run python-osc from there. firmware-sim's
        // host side checks the firmware's expected checksum against the host's render.
        // The tests run the worker the other tasks run: the static one (worker.rs).
        worker,
        Step::cargo("workspace tests", &["test", "--workspace"])
            .env("RUST_MIN_STACK", "16777216")
            .env(worker::ENV, &worker_exe)
            .path_first(&root.join(VENV).join("bin")),
        // In test mode criterion runs each bench once: they build and their output checks pass.
        Step::cargo("benches run once (test mode)", &["test", "-p", "synthpool-benches", "--benches"])
            .env(worker::ENV, &worker_exe),
    ];
    // The Raspberry Pi check: aarch64 builds under qemu-aarch64, on x86-64 machines only.
    steps.extend(pi::steps());
    steps
}

fn test_help() -> String {
    let mut text = String::from("Steps, stopping at the first failure:\n");
    for (i, step) in test_steps(Path::new("")).iter().enumerate() {
        text += &format!("  {}. {:<38} {}\n", i + 1, step.title, step.command_line());
    }
    text + "\n" + &prereq::help(Task::Test)
}

fn test(root: &Path, args: &YesArgs) -> ExitCode {
    prereq::ensure(Task::Test, root, args.yes);
    steps::run_all("test", &test_steps(root));
    // The firmware under QEMU, its logs against firmware-sim/expected (exits 1 on a mismatch).
    firmware::check(root, false);
    ExitCode::SUCCESS
}

fn demo(root: &Path, invoked_in: &Path, args: &DemoArgs) -> ExitCode {
    prereq::ensure(Task::Demo, root, args.yes.yes);
    let out_abs = invoked_in.join(&args.out);
    // Shown and passed relative to the root when it lies inside: shorter, same file.
    let out = out_abs.strip_prefix(root).unwrap_or(&out_abs).to_string_lossy().into_owned();
    let seconds = args.seconds.to_string();
    println!("Starting the synthpool server playing the demo patch (demo/demo.osc) for {seconds} s,");
    println!("on the default audio device (or, without one, a null sink it announces), recording to {out}.");
    println!("Ctrl-C stops it early; the recording is kept.\n");
    if let Some(dir) = out_abs.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|err| fail(&format!("cannot create {}: {err}", dir.display())));
    }
    let serve = Step::cargo(
        "the server plays the demo",
        &[
            "run",
            "--release",
            "-p",
            "synthpool-host",
            "--bin",
            "synthpool",
            "--",
            "--demo",
            "--seconds",
            &seconds,
            "--record",
            &out,
        ],
    );
    let (worker, worker_exe) = worker::build(root, "release");
    steps::run_all("demo", &[worker, serve.env(worker::ENV, &worker_exe)]);
    if !out_abs.is_file() {
        fail(&format!("the server ran but wrote no {out}"));
    }
    println!();
    match player() {
        Some(program) => println!("Recorded {out}. To listen again: {program} {}", args.out.display()),
        None => println!("Recorded {out}. No audio output here: play it on a machine with speakers."),
    }
    ExitCode::SUCCESS
}

/// A player that finds an audio output here, if any: PipeWire, then PulseAudio (each
/// by its socket), then bare ALSA (by a playback device node).
fn player() -> Option<&'static str> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let socket = |name: &str| runtime.as_ref().is_some_and(|dir| dir.join(name).exists());
    if prereq::found("pw-play") && socket("pipewire-0") {
        return Some("pw-play");
    }
    if prereq::found("paplay") && socket("pulse/native") {
        return Some("paplay");
    }
    // ALSA names playback devices /dev/snd/pcmC<card>D<device>p.
    let alsa_playback = std::fs::read_dir("/dev/snd").is_ok_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("pcmC") && n.ends_with('p')))
    });
    (prereq::found("aplay") && alsa_playback).then_some("aplay")
}

fn bench(root: &Path, args: &BenchArgs) -> ExitCode {
    prereq::ensure(Task::Bench, root, false);
    let mut cargo_args = vec!["bench", "-p", "synthpool-benches"];
    if !args.criterion.is_empty() {
        cargo_args.push("--");
        cargo_args.extend(args.criterion.iter().map(String::as_str));
    }
    let (worker, worker_exe) = worker::build(root, "release");
    steps::run_all("bench", &[worker, Step::cargo("criterion benches", &cargo_args).env(worker::ENV, &worker_exe)]);
    if !args.criterion.is_empty() {
        println!("a filtered run: BENCHMARKS.md left as it is (run `cargo xtask bench` alone to rewrite it)");
        return ExitCode::SUCCESS;
    }
    let results = report::read_criterion(root);
    let header = format!("Measured {} on {} by `cargo xtask bench`.", report::provenance(root), report::machine());
    let path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# synthpool benchmarks\n".to_owned());
    let mut tables = report::core_tables(&results, &header);
    tables.extend(report::timing_table(&results, &header));
    tables.extend(report::server_table(root, &header));
    tables.extend(report::reliability_table(root, &header));
    let doc = report::splice(&doc, &tables);
    if let Err(err) = std::fs::write(&path, doc) {
        fail(&format!("cannot write {}: {err}", path.display()));
    }
    println!("rewrote {} from {} criterion results", path.display(), results.len());
    ExitCode::SUCCESS
}

fn profile(root: &Path, invoked_in: &Path, args: &ProfileArgs) -> ExitCode {
    prereq::ensure(Task::Demo, root, false);
    let script_abs = invoked_in.join(&args.script);
    let script = script_abs.strip_prefix(root).unwrap_or(&script_abs).to_string_lossy().into_owned();
    let out = root.join("target/profile").to_string_lossy().into_owned();
    let seconds = args.seconds.to_string();
    let mut cargo_args =
        vec!["run", "--quiet", "--release", "-p", "synthpool-host", "--bin", "synthpool", "--", "profile"];
    cargo_args.extend(["--seconds", &seconds, "--script", &script, "--out", &out]);
    let workers = args.workers.map(|n| n.to_string());
    if let Some(n) = &workers {
        cargo_args.extend(["--workers", n]);
    }
    let pid = args.attach.map(|p| p.to_string());
    if let Some(pid) = &pid {
        cargo_args.extend(["--attach", pid]);
    }
    if args.live {
        cargo_args.push("--live");
    }
    let (worker, worker_exe) = worker::build(root, "release");
    let profile = Step::cargo("the profiler records the server", &cargo_args).env(worker::ENV, &worker_exe);
    steps::run_all("profile", &[worker, profile]);
    ExitCode::SUCCESS
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        Ok(_) => Err("must be a positive number of seconds".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Prints `message` as an error and exits with status 1.
pub fn fail(message: &str) -> ! {
    eprintln!("\nxtask: error: {message}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(positive_seconds("2.5"), Ok(2.5));
        assert!(positive_seconds("0").is_err());
        assert!(positive_seconds("-1").is_err());
        assert!(positive_seconds("inf").is_err());
        assert!(positive_seconds("NaN").is_err());
        assert!(positive_seconds("abc").is_err());
    }
}
