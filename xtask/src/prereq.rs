//! What each task needs on the machine, and installing what is missing.
//!
//! Targets a fresh Debian 12 or Raspberry Pi OS with rustup: Debian packages through
//! apt-get, Rust targets and components through rustup, Python packages in the
//! project-local virtualenv `.venv` (so nothing lands in the system Python).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Task::{self, Demo, Firmware, Test};
use crate::fail;
use Need::{Apt, Python, RustComponent, RustTarget};

/// Everything any task needs. To add one, add a row: checking, installing and the
/// `--help` text follow from here. Rows of one kind install in table order.
#[rustfmt::skip]
pub const PREREQS: &[Prereq] = &[
    //          what                                                 needed by           why
    Prereq::new(Apt("pkg-config"),                                   &[Demo, Test],      "finds ALSA when the host builds"),
    Prereq::new(Apt("libasound2-dev"),                               &[Demo, Test],      "ALSA headers for the host's audio output"),
    Prereq::new(Apt("libjack-jackd2-dev"),                           &[Demo, Test],      "JACK headers for the host's JACK output"),
    Prereq::new(Apt("python3-venv"),                                 &[Test],            "lets Debian's Python create .venv"),
    Prereq::new(Apt("liblo-tools"),                                  &[Test],            "oscsend/oscdump: a second OSC implementation for the tests"),
    Prereq::new(RustTarget("thumbv7em-none-eabihf"),                 &[Test, Firmware],  "builds the core for a Cortex-M4F: proves it is no_std"),
    // Debian 12's QEMU 7.2: it replaces a newer qemu-utils (e.g. from backports) if installed.
    Prereq::new(Apt("qemu-system-arm"),                              &[Test, Firmware],  "runs the firmware on an emulated Cortex-M4F (mps2-an386)"),
    Prereq::new(Apt("gcc"),                                          &[Test, Firmware],  "builds the QEMU plugin that counts the firmware's instructions"),
    Prereq::new(Apt("libc6-dev"),                                    &[Test, Firmware],  "C headers for that plugin"),
    Prereq::new(RustComponent("clippy"),                             &[Test],            "lints the core"),
    Prereq::new(Python { name: "python-osc", version: "1.10.*" },    &[Test],            "the OSC client the end-to-end tests perform with"),
];

/// The project-local virtualenv, relative to the workspace root.
pub const VENV: &str = ".venv";

/// One thing a task needs.
pub struct Prereq {
    /// What to check and install.
    pub need: Need,
    /// The tasks that check it before they run.
    pub tasks: &'static [Task],
    /// Why it is needed, shown by `--help` and when it is installed.
    pub why: &'static str,
}

impl Prereq {
    const fn new(need: Need, tasks: &'static [Task], why: &'static str) -> Self {
        Self { need, tasks, why }
    }
}

/// How a prerequisite is checked and installed.
pub enum Need {
    /// A Debian package: `dpkg-query`, `apt-get install`.
    Apt(&'static str),
    /// A rustup target: `rustup target add`.
    RustTarget(&'static str),
    /// A rustup component: `rustup component add`.
    RustComponent(&'static str),
    /// A PyPI package in `.venv`; `version` is a pip version pattern such as `1.10.*`.
    Python { name: &'static str, version: &'static str },
}

impl Need {
    /// How the help text names it, e.g. `python-osc==1.10.* (in .venv)`.
    pub fn describe(&self) -> String {
        match self {
            Need::Apt(pkg) => format!("{pkg} (Debian package)"),
            Need::RustTarget(target) => format!("{target} (rustup target)"),
            Need::RustComponent(component) => format!("{component} (rustup component)"),
            Need::Python { name, version } => format!("{name}=={version} (in {VENV})"),
        }
    }
}

/// The prerequisites `task` checks, in table order.
pub fn for_task(task: Task) -> impl Iterator<Item = &'static Prereq> {
    PREREQS.iter().filter(move |p| p.tasks.contains(&task))
}

/// Help text listing what `task` checks and installs.
pub fn help(task: Task) -> String {
    let mut text = String::from("Installs what is missing first:\n");
    for p in for_task(task) {
        text += &format!("  {:<44} {}\n", p.need.describe(), p.why);
    }
    text
}

/// Checks what `task` needs and installs what is missing, one line per action; exits
/// with a message naming the failed action if an install fails.
///
/// Before apt-get installs anything it asks, unless `assume_yes` or stdin is not a
/// terminal (CI), where nobody could answer. rustup and pip need no asking: what they
/// add stays in `~/.rustup` and `.venv`.
pub fn ensure(task: Task, root: &Path, assume_yes: bool) {
    let needed: Vec<&Prereq> = for_task(task).collect();
    if needed.is_empty() {
        return;
    }
    println!("==> prerequisites for `cargo xtask {}`", task.name());
    let of = |kind: fn(&Need) -> bool| -> Vec<&Prereq> { needed.iter().copied().filter(|p| kind(&p.need)).collect() };
    // Order matters: python3-venv (apt) before the venv, the venv before pip.
    let actions = ensure_apt(&of(|n| matches!(n, Apt(_))), assume_yes || !std::io::stdin().is_terminal())
        + ensure_rustup("target", &of(|n| matches!(n, RustTarget(_))))
        + ensure_rustup("component", &of(|n| matches!(n, RustComponent(_))))
        + ensure_python(root, &of(|n| matches!(n, Python { .. })));
    if actions == 0 {
        println!("    all {} present", needed.len());
    }
    println!();
}

/// Installs the missing Debian packages among `pkgs`; returns the number of actions.
fn ensure_apt(pkgs: &[&Prereq], assume_yes: bool) -> usize {
    let missing: Vec<&Prereq> = pkgs.iter().copied().filter(|p| !apt_installed(name(p))).collect();
    if missing.is_empty() {
        return 0;
    }
    let names: Vec<&str> = missing.iter().map(|p| name(p)).collect();
    if !found("apt-get") {
        println!("    ! no apt-get (not Debian?): install the equivalents of {} yourself", names.join(" "));
        return 1;
    }
    let mut sudo: Vec<&str> = Vec::new();
    if !is_root() {
        if !found("sudo") {
            fail(&format!(
                "need Debian packages {0} and cannot install them: not root and no sudo.\n\
                 As root, run: apt-get update && apt-get install {0}",
                names.join(" ")
            ));
        }
        sudo.push("sudo");
    }
    // apt-get asks only when it would install more than the packages named, so the
    // question is asked here, before the slow update; a yes then passes -y.
    let assume_yes = assume_yes || confirm(&format!("install the Debian packages {} with apt-get?", names.join(" ")));
    if !assume_yes {
        fail(&format!(
            "not installing. To install them yourself: {}apt-get install {}",
            sudo.iter().map(|s| format!("{s} ")).collect::<String>(),
            names.join(" ")
        ));
    }
    // Once per run, before the first install: a fresh image's package lists may be
    // empty or stale, and apt-get install then fails with "Unable to locate package".
    let mut update = sudo.clone();
    update.extend(["apt-get", "update"]);
    action(&update, "refresh the package lists before installing");

    let mut install = sudo;
    install.extend(["apt-get", "install", "-y"]);
    install.extend(&names);
    action(&install, &missing.iter().map(|p| p.why).collect::<Vec<_>>().join("; "));
    2
}

/// Asks `question` on the terminal; Enter means yes.
fn confirm(question: &str) -> bool {
    print!("    ? {question} [Y/n] ");
    let mut answer = String::new();
    // No answer (a failed read, or Ctrl-D: 0 bytes) is a no.
    let _ = std::io::stdout().flush();
    if !std::io::stdin().read_line(&mut answer).is_ok_and(|n| n > 0) {
        println!();
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes")
}

/// `dpkg-query` says "install ok installed" (once per architecture: with multiarch it
/// may print several lines). No dpkg-query at all counts as not installed.
fn apt_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\\n", pkg])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "install ok installed"))
}

/// Adds the rustup `kind`s ("target" or "component") among `needed` that are missing;
/// returns the number of actions.
fn ensure_rustup(kind: &str, needed: &[&Prereq]) -> usize {
    if needed.is_empty() {
        return 0;
    }
    let list = Command::new("rustup").args([kind, "list", "--installed"]).stderr(Stdio::inherit()).output();
    let installed = match list {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(_) => fail(&format!("`rustup {kind} list --installed` failed (see above)")),
        Err(_) => fail(&format!(
            "rustup not found, and it manages the {kind}s this needs ({}).\n\
             Install it from https://rustup.rs, then run this again.",
            needed.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
        )),
    };
    // Components are listed with their host triple: "clippy-x86_64-unknown-linux-gnu".
    let present = |n: &str| installed.lines().any(|l| l == n || l.starts_with(&format!("{n}-")));
    let mut actions = 0;
    for p in needed.iter().filter(|p| !present(name(p))) {
        action(&["rustup", kind, "add", name(p)], p.why);
        actions += 1;
    }
    actions
}

/// Creates `.venv` if needed and pip-installs the missing Python packages among
/// `needed` into it; returns the number of actions.
fn ensure_python(root: &Path, needed: &[&Prereq]) -> usize {
    if needed.is_empty() {
        return 0;
    }
    let mut actions = 0;
    let python = root.join(VENV).join("bin/python");
    if !Command::new(&python).args(["-c", ""]).status().is_ok_and(|s| s.success()) {
        // Debian's interpreter, not whatever `python3` comes first on PATH (pyenv,
        // conda): python3-venv is what makes its `-m venv` work. --clear rebuilds a
        // broken .venv, say one whose interpreter was upgraded away.
        let system = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        action(&[system, "-m", "venv", "--clear", VENV], "project-local Python for the tests");
        actions += 1;
    }
    let mut specs: Vec<String> = Vec::new();
    let mut whys: Vec<&str> = Vec::new();
    for p in needed {
        if let Python { name, version } = p.need
            && !python_has(&python, name, version)
        {
            specs.push(format!("{name}=={version}"));
            whys.push(p.why);
        }
    }
    if !specs.is_empty() {
        let venv_python = format!("{VENV}/bin/python");
        let mut pip = vec![venv_python.as_str(), "-m", "pip", "install", "--quiet"];
        pip.extend(specs.iter().map(String::as_str));
        action(&pip, &whys.join("; "));
        actions += 1;
    }
    actions
}

/// The package, target or component name of an apt or rustup row.
fn name(p: &Prereq) -> &'static str {
    match p.need {
        Apt(n) | RustTarget(n) | RustComponent(n) | Python { name: n, .. } => n,
    }
}

/// Whether the venv's interpreter has `name` at a version matching `version`
/// (`1.10.*` or an exact `1.10.2`).
fn python_has(python: &Path, name: &str, version: &str) -> bool {
    let script = format!("import importlib.metadata as m; print(m.version({name:?}))");
    let Ok(out) = Command::new(python).args(["-c", &script]).stderr(Stdio::null()).output() else {
        return false;
    };
    out.status.success() && version_matches(String::from_utf8_lossy(&out.stdout).trim(), version)
}

/// Whether `installed` matches pip's `==pattern`, for the two forms the table uses:
/// `1.10.*` (any 1.10 release) and an exact `1.10.2`.
fn version_matches(installed: &str, pattern: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(prefix) => installed == prefix || installed.starts_with(&format!("{prefix}.")),
        None => installed == pattern,
    }
}

/// Prints `argv` as one `+ command  # why` line, runs it (in the workspace root, with
/// the terminal attached so apt-get and sudo can ask), and exits if it fails.
fn action(argv: &[&str], why: &str) {
    let line = argv.join(" ");
    if why.is_empty() {
        println!("    + {line}");
    } else {
        println!("    + {line:<60} # {why}");
    }
    match Command::new(argv[0]).args(&argv[1..]).status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("`{line}` failed ({status}); fix that, or run it yourself, then run this again")),
        Err(err) => fail(&format!("could not start `{}`: {err}", argv[0])),
    }
}

/// Whether `program` is on PATH.
pub fn found(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    // std has no getuid(); `id -u` is in coreutils, on every Debian.
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_patterns_match_like_pip() {
        assert!(version_matches("1.10.2", "1.10.*"));
        assert!(version_matches("1.10", "1.10.*"));
        assert!(!version_matches("1.100.0", "1.10.*"));
        assert!(!version_matches("1.9.3", "1.10.*"));
        assert!(version_matches("1.10.2", "1.10.2"));
        assert!(!version_matches("1.10.20", "1.10.2"));
    }

    #[test]
    fn every_prereq_belongs_to_a_task() {
        assert!(PREREQS.iter().all(|p| !p.tasks.is_empty() && !p.why.is_empty()));
    }
}
