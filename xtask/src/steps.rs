//! Steps: one command each, announced with a header, timed, failing fast, and summed
//! up in a table at the end.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fail;

/// One command a task runs.
pub struct Step {
    /// What it shows, in a few words, for the header and the summary.
    pub title: &'static str,
    program: OsString,
    args: Vec<String>,
    envs: Vec<(&'static str, OsString)>,
    /// How the PATH change reads in [`Step::command_line`], if any.
    path_shown: Option<String>,
}

impl Step {
    /// `cargo ARGS`, with the cargo that runs xtask (the toolchain rustup picked).
    pub fn cargo(title: &'static str, args: &[&str]) -> Self {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Self { title, program, args: args.iter().map(|&a| a.to_owned()).collect(), envs: Vec::new(), path_shown: None }
    }

    /// Sets `key` to `value` for this step only.
    pub fn env(mut self, key: &'static str, value: impl Into<OsString>) -> Self {
        self.envs.push((key, value.into()));
        self
    }

    /// Puts `dir` first on PATH for this step only.
    pub fn path_first(self, dir: &Path) -> Self {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::var_os("PATH").iter().flat_map(std::env::split_paths));
        let path = std::env::join_paths(dirs)
            .unwrap_or_else(|err| fail(&format!("cannot put {} on PATH: {err}", dir.display())));
        let mut step = self.env("PATH", path);
        step.path_shown = Some(format!("PATH={}:$PATH", dir.display()));
        step
    }

    /// The command as the user would type it (`cargo`, not the toolchain's full path).
    pub fn command_line(&self) -> String {
        let program = Path::new(&self.program).file_name().unwrap_or(self.program.as_os_str()).to_string_lossy();
        let mut line = self.path_shown.clone().map(|p| p + " ").unwrap_or_default();
        for (key, value) in &self.envs {
            if *key != "PATH" {
                line += &format!("{key}={} ", value.to_string_lossy());
            }
        }
        line += &program;
        for arg in &self.args {
            line += " ";
            line += arg;
        }
        line
    }
}

/// How a step ended.
enum Outcome {
    Passed(Duration),
    Failed(Duration, String),
    NotRun,
}

/// Runs `steps` in order in the current directory, stopping at the first failure;
/// prints a summary table either way and exits with status 1 on a failure.
pub fn run_all(task: &str, steps: &[Step]) {
    let total = Instant::now();
    let mut outcomes: Vec<Outcome> = steps.iter().map(|_| Outcome::NotRun).collect();
    let mut failed = None;
    for (i, step) in steps.iter().enumerate() {
        println!("==> [{}/{}] {}", i + 1, steps.len(), step.title);
        println!("    $ {}", step.command_line());
        let start = Instant::now();
        let mut command = Command::new(&step.program);
        command.args(&step.args).envs(step.envs.iter().map(|(k, v)| (k, v)));
        let result = command.status();
        let took = start.elapsed();
        match result {
            Ok(status) if status.success() => {
                println!("<== [{}/{}] {} passed in {}\n", i + 1, steps.len(), step.title, secs(took));
                outcomes[i] = Outcome::Passed(took);
            }
            Ok(status) => {
                outcomes[i] = Outcome::Failed(took, status.to_string());
                failed = Some(i);
                break;
            }
            Err(err) => {
                outcomes[i] = Outcome::Failed(took, format!("could not start: {err}"));
                failed = Some(i);
                break;
            }
        }
    }
    summary(task, steps, &outcomes, total.elapsed());
    if let Some(i) = failed {
        let step = &steps[i];
        fail(&format!(
            "step {} of {} failed: {}\nTo run it alone: {}",
            i + 1,
            steps.len(),
            step.title,
            step.command_line()
        ));
    }
}

fn summary(task: &str, steps: &[Step], outcomes: &[Outcome], total: Duration) {
    let width = steps.iter().map(|s| s.title.len()).max().unwrap_or(0);
    println!("==> summary of `cargo xtask {task}`");
    for (i, (step, outcome)) in steps.iter().zip(outcomes).enumerate() {
        let (time, result) = match outcome {
            Outcome::Passed(took) => (secs(*took), "ok".to_owned()),
            Outcome::Failed(took, why) => (secs(*took), format!("FAILED ({why})")),
            Outcome::NotRun => (String::new(), "not run".to_owned()),
        };
        println!("    {}. {:<width$}  {:>8}  {}", i + 1, step.title, time, result);
    }
    println!("    {:<w$}  {:>8}", "total", secs(total), w = width + 3);
}

/// `12.3 s`, or `2 min 05 s` past a minute.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 { format!("{s:.1} s") } else { format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60) }
}
