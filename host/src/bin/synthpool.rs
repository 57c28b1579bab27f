//! `synthpool`: the modular synthesizer server's command line.
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use synthpool_host::audio::AudioChoice;
use synthpool_host::persist::Store;
use synthpool_host::server::{ServeOptions, render, serve};

/// synthpool: a real-time modular synthesizer you patch live over OSC.
///
/// Start it, point an OSC controller at it (UDP, port 57130 by default) and patch:
///   /module/new vco 1        /module/set 1 freq 220       /patch 1 out 0 in
/// Every request is answered /done or /fail. See PROTOCOL.md for every address.
/// OSCQuery (and a page to play it from a browser) is served on the same port over TCP.
///
/// Environment: SYNTHPOOL_WORKER=PATH names the synthpool-worker to launch (default: the one
/// beside this program; `cargo xtask` points it at a statically linked one).
#[derive(Parser)]
#[command(version, about, long_about, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// UDP port for OSC.
    #[arg(long, default_value_t = 57130)]
    port: u16,
    /// Address to listen on. 0.0.0.0 lets anyone on the network play it.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Worker processes, each pinned to a core [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Audio output: the default device (auto), JACK, ALSA, or a silent null sink.
    #[arg(long, value_enum, default_value_t = AudioChoice::Auto)]
    audio: AudioChoice,
    /// Audio device id (e.g. alsa:hw:0,0 or jack:output).
    #[arg(long)]
    device: Option<String>,
    /// Also write what is played to this 32-bit float WAV file.
    #[arg(long, value_name = "FILE.wav")]
    record: Option<PathBuf>,
    /// Play the demo patch (demo/demo.osc).
    #[arg(long, conflicts_with = "script")]
    demo: bool,
    /// Play this patch script as the demo plays its own (e.g. demo/load.osc, a load to
    /// profile); like the demo, it starts from an empty patch and is not saved.
    #[arg(long, value_name = "FILE.osc")]
    script: Option<PathBuf>,
    /// Sample rate, Hz.
    #[arg(long, default_value_t = 48_000)]
    sample_rate: u32,
    /// Frames per block (64 is the only size this build renders).
    #[arg(long, default_value_t = 64)]
    block: usize,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    seconds: Option<f64>,
    /// Answer only senders in this network (CIDR like 192.168.1.0/24, or one address);
    /// repeat for more. Others are dropped and counted in /status.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    allow: Vec<IpNet>,
    /// Folder for the last patch (restored at start) and the named patches
    /// [default: $XDG_STATE_HOME/synthpool or ~/.local/state/synthpool].
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Start with an empty patch instead of the one the last run left.
    #[arg(long)]
    fresh: bool,
    /// Do not announce the server by mDNS (_osc._udp, _oscjson._tcp). It is announced only
    /// when it listens beyond loopback (--bind).
    #[arg(long)]
    no_announce: bool,
}

/// A network: CIDR, or one address (a /32 or /128).
fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a network (192.168.1.0/24) or an address"))
}

#[derive(Subcommand)]
enum Command {
    /// Render a patch script offline through the same worker pool, as fast as the CPU allows.
    ///
    /// A script is text, one OSC message a line (`/module/new vco 1`), `@SECONDS` before a
    /// line to schedule it, `#` for comments. See demo/demo.osc.
    Render {
        /// The patch script to play.
        #[arg(long)]
        script: PathBuf,
        /// How many seconds to render.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Where to write the 32-bit float stereo WAV.
        #[arg(long)]
        out: PathBuf,
        /// A WAV file to play as the audio input (`input` modules), at the render's sample
        /// rate; silence after it ends [default: silence].
        #[arg(long, value_name = "FILE.wav")]
        input: Option<PathBuf>,
        /// Worker processes [default: one per core].
        #[arg(long)]
        workers: Option<usize>,
        /// Sample rate, Hz.
        #[arg(long, default_value_t = 48_000)]
        sample_rate: u32,
    },
    /// Time each worker core and module of a running server (read-only), or of one it starts.
    ///
    /// Without --attach it starts this synthpool (null audio, a fresh patch, state in
    /// --out) playing --script, records --seconds, stops it. It prints a table per worker
    /// (block time p50/p99/max, share of the 1.333 ms budget, late blocks, wake latency,
    /// the three costliest modules) and writes OUT/profile.svg and OUT/profile.txt.
    Profile {
        /// Worker processes of the server it starts [default: one per core].
        #[arg(long)]
        workers: Option<usize>,
        /// How long to record, s.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The load script for the server it starts.
        #[arg(long, default_value = "demo/load.osc")]
        script: PathBuf,
        /// Read a running synthpool's (or render's) timings instead: its pid.
        #[arg(long, value_name = "PID")]
        attach: Option<u32>,
        /// Refresh the table once a second until Ctrl-C.
        #[arg(long)]
        live: bool,
        /// Folder for the picture, the table and the started server's state.
        #[arg(long, default_value = "target/profile")]
        out: PathBuf,
    },
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Counts allocations on the audio path (there must be none; `/status` reports them).
#[global_allocator]
static ALLOCATOR: synthpool_host::alloc_count::CountingAlloc = synthpool_host::alloc_count::CountingAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Render { script, seconds, out, input, workers, sample_rate }) => {
            let text = match std::fs::read_to_string(&script) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("synthpool: cannot read {}: {e}", script.display());
                    return ExitCode::FAILURE;
                }
            };
            let started = Instant::now();
            match render(&text, seconds, sample_rate, workers.unwrap_or_else(cores), input.as_deref(), &out) {
                Ok(report) => {
                    for line in &report.refused {
                        eprintln!("synthpool: {}: refused {line}", script.display());
                    }
                    let took = started.elapsed().as_secs_f64();
                    println!(
                        "synthpool: rendered {seconds} s of {} to {} in {took:.2} s ({:.0}x real time)",
                        script.display(),
                        out.display(),
                        seconds / took.max(1e-9)
                    );
                    println!(
                        "synthpool: audio path: {} allocations, {} frees in {} blocks (block loop and workers)",
                        report.allocations.0, report.allocations.1, report.blocks
                    );
                    if report.refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(e) => {
                    eprintln!("synthpool: render failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Profile { workers, seconds, script, attach, live, out }) => {
            let options = synthpool_host::profile::ProfileOptions {
                workers: workers.unwrap_or_else(cores).max(1),
                seconds,
                script,
                attach,
                live,
                out_dir: out,
            };
            ExitCode::from(synthpool_host::profile::run(&options) as u8)
        }
        None => {
            let a = cli.serve;
            let script = match &a.script {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(text) => Some(text),
                    Err(e) => {
                        eprintln!("synthpool: cannot read {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                },
                None => None,
            };
            if a.block != synthpool_core::BLOCK {
                eprintln!(
                    "synthpool: --block {}: this build renders blocks of {} frames only",
                    a.block,
                    synthpool_core::BLOCK
                );
                return ExitCode::from(2);
            }
            let options = ServeOptions {
                listen: SocketAddr::new(a.bind, a.port),
                workers: a.workers.unwrap_or_else(cores).max(1),
                audio: a.audio,
                device: a.device,
                record: a.record,
                demo: a.demo,
                script,
                sample_rate_hz: a.sample_rate,
                seconds: a.seconds,
                allow: a.allow,
                state_dir: a.state.unwrap_or_else(Store::default_dir),
                fresh: a.fresh,
                announce: !a.no_announce,
            };
            ExitCode::from(serve(&options) as u8)
        }
    }
}
