//! The statically linked `synthpool-worker` every `cargo xtask` task runs.
//!
//! A dynamically linked worker maps libc and the loader: ~1.3 MB of shared pages resident in
//! every worker, which puts an idle worker over issue 3's 2 MB. Built without the host's
//! `server` feature the worker links no audio library, so it links statically (glibc's
//! `libc.a`, `+crt-static`), into `target/<host triple>/<profile>/`, beside nothing that
//! cargo would overwrite. The tasks point the server at it with `SYNTHPOOL_WORKER`
//! (`synthpool_host::pool::WORKER_ENV`); a plain `cargo run` keeps the dynamic worker.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fail;
use crate::steps::Step;

/// The variable the server reads (`synthpool_host::pool::WORKER_ENV`).
pub const ENV: &str = "SYNTHPOOL_WORKER";

/// The host's target triple (`rustc -vV`): `--target` with it keeps the static flags off
/// build scripts and out of the usual `target/<profile>`.
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().unwrap_or_else(|e| fail(&format!("cannot run rustc: {e}")));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap_or_else(|| fail("rustc -vV names no host triple"))
}

/// The step that builds the static worker for `profile` ("debug" or "release"), and where it
/// puts it.
pub fn build(root: &Path, profile: &str) -> (Step, PathBuf) {
    let triple = host_triple();
    let mut args = vec!["build", "-p", "synthpool-host", "--bin", "synthpool-worker", "--no-default-features"];
    args.extend(["--target", &triple]);
    if profile == "release" {
        args.push("--release");
    }
    let step = Step::cargo("the worker, statically linked", &args).env("RUSTFLAGS", "-C target-feature=+crt-static");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    (step, target.join(triple).join(profile).join("synthpool-worker"))
}
