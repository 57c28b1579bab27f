//! `synthpool`: the modular synthesizer server's command line.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use synthpool_host::render::{render_script, write_wav};

/// synthpool: a real-time modular synthesizer you patch live over OSC.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a patch script offline to a WAV file, as fast as the CPU allows.
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
        /// Where to write the 32-bit float mono WAV.
        #[arg(long)]
        out: PathBuf,
        /// Sample rate in Hz.
        #[arg(long, default_value_t = 48_000)]
        sample_rate: u32,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Render { script, seconds, out, sample_rate } => {
            let text = match std::fs::read_to_string(&script) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("synthpool: cannot read {}: {e}", script.display());
                    return ExitCode::FAILURE;
                }
            };
            let started = Instant::now();
            let (samples, problems) = render_script(&text, seconds, sample_rate);
            for p in &problems {
                eprintln!("synthpool: {}:{}: refused: {}", script.display(), p.line, p.message);
            }
            if let Err(e) = write_wav(&out, &samples, sample_rate) {
                eprintln!("synthpool: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            let took = started.elapsed().as_secs_f64();
            println!(
                "synthpool: rendered {seconds} s of {} to {} in {took:.2} s ({:.0}x real time)",
                script.display(),
                out.display(),
                seconds / took.max(1e-9)
            );
            if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
