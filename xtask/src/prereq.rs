//! What each task needs on the machine, and installing what is missing.
//!
//! Targets a fresh Debian 12 or Raspberry Pi OS with rustup: Debian packages through
//! apt-get (and, for the aarch64 cross-check, a second Debian architecture through dpkg),
//! Rust targets and components through rustup, Python packages in the project-local
//! virtualenv `.venv` (so nothing lands in the system Python).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Task::{self, Demo, Firmware, Test};
use crate::{fail, pi};
use Need::{Apt, DebianArch, Python, RustComponent, RustTarget};

/// Everything any task needs. To add one, add a row: checking, installing and the
/// `--help` text follow from here. Rows of one kind install in table order.
#[rustfmt::skip]
pub const PREREQS: &[Prereq] = &[
    //          what                                                 needed by           why
    Prereq::new(Apt("pkg-config"),                                   &[Demo, Test],      "finds ALSA when the host builds"),
    Prereq::new(Apt("libasound2-dev"),                               &[Demo, Test],      "ALSA headers for the host's audio output"),
    Prereq::new(Apt("libjack-jackd2-dev"),                           &[Demo, Test],      "JACK headers for the host's JACK output"),
    Prereq::new(Apt("python3-venv"),                                 &[Test],            "lets Debian's Python create .venv"),
    Prereq::new(Apt("jackd2"),                                       &[Test],            "JACK's dummy driver: a paced device for the tests' real cpal streams, out and in"),
    Prereq::new(Apt("liblo-tools"),                                  &[Test],            "oscsend/oscdump: a second OSC implementation for the tests"),
    Prereq::new(RustTarget("thumbv7em-none-eabihf"),                 &[Test, Firmware],  "builds the core for a Cortex-M4F: proves it is no_std"),
    // Debian 12's QEMU 7.2: it replaces a newer qemu-utils (e.g. from backports) if installed.
    Prereq::new(Apt("qemu-system-arm"),                              &[Test, Firmware],  "runs the firmware on an emulated Cortex-M4F (mps2-an386)"),
    Prereq::new(Apt("gcc"),                                          &[Test, Firmware],  "builds the QEMU plugin that counts the firmware's instructions"),
    Prereq::new(Apt("libc6-dev"),                                    &[Test, Firmware],  "C headers for that plugin"),
    Prereq::new(RustComponent("clippy"),                             &[Test],            "lints the core"),
    Prereq::new(Python { name: "python-osc", version: "1.10.*" },    &[Test],            "the OSC client the end-to-end tests perform with"),
    Prereq::new(Apt("chromium"),                                     &[Test],            "headless browser: the page's end-to-end test (tests/tests/page.rs)"),
    // The Raspberry Pi check (pi.rs): cross-build for aarch64, test under qemu-aarch64. Only
    // on an x86-64 machine: on a Pi the workspace tests above already run on aarch64.
    Prereq::new(DebianArch("arm64"),                                 &[Test],            "multiarch: lets apt install the arm64 libraries below beside the amd64 ones").only_on(pi::CROSS_FROM),
    Prereq::new(Apt("gcc-aarch64-linux-gnu"),                        &[Test],            "the aarch64 linker that .cargo/config.toml names").only_on(pi::CROSS_FROM),
    Prereq::new(Apt("qemu-user"),                                    &[Test],            "qemu-aarch64 runs the aarch64 tests on this machine").only_on(pi::CROSS_FROM),
    Prereq::new(Apt("libasound2-dev:arm64"),                         &[Test],            "ALSA for the host's aarch64 build").only_on(pi::CROSS_FROM),
    Prereq::new(Apt("libjack-jackd2-dev:arm64"),                     &[Test],            "JACK for the host's aarch64 build").only_on(pi::CROSS_FROM),
    Prereq::new(RustTarget("aarch64-unknown-linux-gnu"),             &[Test],            "Rust's standard library for aarch64").only_on(pi::CROSS_FROM),
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
    /// Needed only on machines of this architecture (`std::env::consts::ARCH`, e.g.
    /// `x86_64`); `None`: on every machine.
    pub only_on: Option<&'static str>,
}

impl Prereq {
    const fn new(need: Need, tasks: &'static [Task], why: &'static str) -> Self {
        Self { need, tasks, why, only_on: None }
    }

    /// The same row, needed only on machines whose architecture is `arch`.
    const fn only_on(self, arch: &'static str) -> Self {
        Self { only_on: Some(arch), ..self }
    }

    /// Whether this machine needs it (its architecture is the one named, if any).
    fn needed_here(&self) -> bool {
        self.only_on.is_none_or(|arch| arch == std::env::consts::ARCH)
    }
}

/// How a prerequisite is checked and installed.
pub enum Need {
    /// A Debian package: `dpkg-query`, `apt-get install`. `name:arch` (e.g.
    /// `libasound2-dev:arm64`) is the package of another architecture, which needs a
    /// [`Need::DebianArch`] row before it.
    Apt(&'static str),
    /// A foreign Debian architecture (multiarch): `dpkg --print-foreign-architectures`,
    /// `dpkg --add-architecture`; installed with the apt rows, before the package lists
    /// are refreshed.
    DebianArch(&'static str),
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
            Need::DebianArch(arch) => format!("{arch} (Debian architecture)"),
            Need::RustTarget(target) => format!("{target} (rustup target)"),
            Need::RustComponent(component) => format!("{component} (rustup component)"),
            Need::Python { name, version } => format!("{name}=={version} (in {VENV})"),
        }
    }
}

/// The prerequisites `task` checks on this machine, in table order.
pub fn for_task(task: Task) -> impl Iterator<Item = &'static Prereq> {
    PREREQS.iter().filter(move |p| p.tasks.contains(&task) && p.needed_here())
}

/// Help text listing what `task` checks and installs (on any machine: rows limited to one
/// architecture say so).
pub fn help(task: Task) -> String {
    let mut text = String::from("Installs what is missing first:\n");
    for p in PREREQS.iter().filter(|p| p.tasks.contains(&task)) {
        let only = p.only_on.map(|arch| format!(" (on {arch} only)")).unwrap_or_default();
        text += &format!("  {:<44} {}{only}\n", p.need.describe(), p.why);
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
    let actions =
        ensure_apt(&of(|n| matches!(n, Apt(_) | DebianArch(_))), assume_yes || !std::io::stdin().is_terminal())
            + ensure_rustup("target", &of(|n| matches!(n, RustTarget(_))))
            + ensure_rustup("component", &of(|n| matches!(n, RustComponent(_))))
            + ensure_python(root, &of(|n| matches!(n, Python { .. })));
    if actions == 0 {
        println!("    all {} present", needed.len());
    }
    println!();
}

/// Adds the missing Debian architectures and installs the missing Debian packages among
/// `rows` (architecture and apt rows); returns the number of actions.
fn ensure_apt(rows: &[&Prereq], assume_yes: bool) -> usize {
    let missing: Vec<&Prereq> = rows.iter().copied().filter(|p| !dpkg_has(p)).collect();
    if missing.is_empty() {
        return 0;
    }
    let (archs, pkgs): (Vec<&Prereq>, Vec<&Prereq>) = missing.iter().partition(|p| matches!(p.need, DebianArch(_)));
    let arch_names: Vec<&str> = archs.iter().map(|p| name(p)).collect();
    let names: Vec<&str> = pkgs.iter().map(|p| name(p)).collect();
    let mut wanted = Vec::new();
    if !arch_names.is_empty() {
        wanted.push(format!("the Debian architecture {} (multiarch)", arch_names.join(" ")));
    }
    if !names.is_empty() {
        wanted.push(format!("the Debian packages {}", names.join(" ")));
    }
    let wanted = wanted.join(" and ");
    if !found("apt-get") {
        println!("    ! no apt-get (not Debian?): add the equivalents of {wanted} yourself");
        return 1;
    }
    let mut sudo: Vec<&str> = Vec::new();
    if !is_root() {
        if !found("sudo") {
            fail(&format!(
                "need {wanted} and cannot add them: not root and no sudo.\nAs root, run: {}",
                by_hand("", &arch_names, &names)
            ));
        }
        sudo.push("sudo");
    }
    // apt-get asks only when it would install more than the packages named, so the
    // question is asked here, before the slow update; a yes then passes -y.
    let mut question = Vec::new();
    if !arch_names.is_empty() {
        question.push(format!("add the Debian architecture {} (multiarch) with dpkg", arch_names.join(" ")));
    }
    if !names.is_empty() {
        question.push(format!("install the Debian packages {} with apt-get", names.join(" ")));
    }
    let assume_yes = assume_yes || confirm(&format!("{}?", question.join(" and ")));
    if !assume_yes {
        fail(&format!(
            "not installing. To install them yourself: {}",
            by_hand(if sudo.is_empty() { "" } else { "sudo " }, &arch_names, &names)
        ));
    }
    // dpkg first: apt then fetches that architecture's package lists in the update.
    // It changes no installed package; `dpkg --remove-architecture` undoes it once no
    // package of that architecture is left.
    for p in &archs {
        let mut add = sudo.clone();
        add.extend(["dpkg", "--add-architecture", name(p)]);
        action(&add, p.why);
    }
    // Once per run, before the first install: a fresh image's package lists may be
    // empty or stale, and apt-get install then fails with "Unable to locate package".
    let mut update = sudo.clone();
    update.extend(["apt-get", "update"]);
    action(&update, "refresh the package lists before installing");
    if names.is_empty() {
        return archs.len() + 1;
    }
    // Noninteractive: a package's configuration question (jackd2 asks whether to allow
    // real-time priority) takes its default instead of waiting at a prompt with no terminal.
    let mut install = sudo;
    install.extend(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y"]);
    install.extend(&names);
    action(&install, &pkgs.iter().map(|p| p.why).collect::<Vec<_>>().join("; "));
    archs.len() + 2
}

/// The commands that add `archs` and install `pkgs` by hand, each prefixed by `sudo`.
fn by_hand(sudo: &str, archs: &[&str], pkgs: &[&str]) -> String {
    let mut commands: Vec<String> = archs.iter().map(|a| format!("{sudo}dpkg --add-architecture {a}")).collect();
    commands.push(format!("{sudo}apt-get update"));
    if !pkgs.is_empty() {
        commands.push(format!("{sudo}apt-get install {}", pkgs.join(" ")));
    }
    commands.join(" && ")
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

/// Whether dpkg has the package of an apt row, or the architecture of an architecture row.
fn dpkg_has(p: &Prereq) -> bool {
    match p.need {
        DebianArch(arch) => architecture_added(arch),
        _ => apt_installed(name(p)),
    }
}

/// Whether `dpkg` handles packages of `arch`: it is the native architecture or a foreign
/// one added with `dpkg --add-architecture`. No dpkg at all counts as not added.
fn architecture_added(arch: &str) -> bool {
    let lines = |flag: &str| {
        Command::new("dpkg").arg(flag).stderr(Stdio::null()).output().map_or_else(
            |_| Vec::new(),
            |out| String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>(),
        )
    };
    [lines("--print-architecture"), lines("--print-foreign-architectures")].concat().iter().any(|a| a == arch)
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

/// The package, architecture, target or component name of a row.
fn name(p: &Prereq) -> &'static str {
    match p.need {
        Apt(n) | DebianArch(n) | RustTarget(n) | RustComponent(n) | Python { name: n, .. } => n,
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

    #[test]
    fn a_foreign_package_comes_with_its_architecture() {
        // `pkg:arch` installs only once dpkg knows `arch`: an architecture row for the same
        // tasks and machines must exist.
        for p in PREREQS {
            if let Apt(pkg) = p.need
                && let Some((_, arch)) = pkg.split_once(':')
            {
                assert!(
                    PREREQS.iter().any(|a| matches!(a.need, DebianArch(x) if x == arch)
                        && p.tasks.iter().all(|t| a.tasks.contains(t))
                        && a.only_on == p.only_on),
                    "{pkg} needs a DebianArch({arch:?}) row for its tasks and machines"
                );
            }
        }
    }

    #[test]
    fn by_hand_adds_the_architecture_before_the_update() {
        assert_eq!(by_hand("sudo ", &[], &["gcc"]), "sudo apt-get update && sudo apt-get install gcc");
        assert_eq!(
            by_hand("", &["arm64"], &["libasound2-dev:arm64"]),
            "dpkg --add-architecture arm64 && apt-get update && apt-get install libasound2-dev:arm64"
        );
    }
}
