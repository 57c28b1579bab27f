//! The Raspberry Pi check of `cargo xtask test`: aarch64 builds on an x86-64 machine.
//!
//! The core must compute the same bits on x86-64, on aarch64 (a Raspberry Pi 4 or 5 under
//! 64-bit Raspberry Pi OS) and on the Cortex-M4F. So the core's tests and firmware-sim's
//! checksum test (the demo rendered and hashed, against the total the firmware logged in
//! `firmware-sim/expected/demo.out`) are built for `aarch64-unknown-linux-gnu` and run under
//! `qemu-aarch64`; then the server is cross-built against Debian's arm64 ALSA and JACK
//! packages (multiarch) and started once under qemu-aarch64: it loads the arm64 libasound
//! it links. (JACK's library is opened only when JACK is chosen: the `jack` crate loads it
//! at run time, and needs `jack.pc` only to build.)
//!
//! The linker comes from `.cargo/config.toml`; the runner and pkg-config's cross settings
//! only from these steps: in `.cargo/config.toml` the pkg-config settings would reach the
//! native builds too, and the runner would apply on a Pi, where aarch64 is the native target
//! and `cargo run` must run the binary itself. On an aarch64 machine there are no steps: the
//! workspace tests before them already ran on aarch64.

use crate::steps::Step;

/// The Raspberry Pi's Rust target (64-bit Raspberry Pi OS).
pub const TARGET: &str = "aarch64-unknown-linux-gnu";

/// The architecture (`std::env::consts::ARCH`) of the machines that cross-check: Debian
/// ships the aarch64 cross gcc and qemu-user for it, and CI runs on it.
pub const CROSS_FROM: &str = "x86_64";

/// The aarch64 builds' own target directory, relative to the workspace root: they never
/// evict or invalidate the native builds in `target/`.
const TARGET_DIR: &str = "target/aarch64";

/// The runner of the aarch64 test binaries. No `-L /usr/aarch64-linux-gnu` (the cross
/// sysroot of Debian's libc6-arm64-cross): the multiarch libc6:arm64 that the arm64 ALSA and
/// JACK packages bring is found by the loader's cache (/etc/ld.so.cache) whatever the prefix,
/// and with `-L` qemu takes the loader (ld-linux-aarch64.so.1) from the cross sysroot, a
/// different glibc build (2.36-8cross1 against 2.36-9+deb12u14 on Debian 12): that mix
/// loops forever in the first pthread_create. Without `-L` the loader and libc come from
/// the same package.
const RUNNER: &str = "qemu-aarch64";

/// Where multiarch puts the arm64 `.pc` files (libasound2-dev:arm64, libjack-jackd2-dev:arm64),
/// then the architecture-independent ones. LIBDIR, not PATH: it replaces pkg-config's
/// default search path, so the amd64 `.pc` files are not found instead.
const PKG_CONFIG_LIBDIR: &str = "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig";

/// The steps, in order, that `cargo xtask test` runs after its own; none on a machine
/// that is not [`CROSS_FROM`].
pub fn steps() -> Vec<Step> {
    if std::env::consts::ARCH != CROSS_FROM {
        return Vec::new();
    }
    // `cargo SUBCOMMAND --target .. --target-dir .. REST`: before any `--`.
    let cross = |title, args: &[&str]| {
        let mut all = args.to_vec();
        all.splice(1..1, ["--target", TARGET, "--target-dir", TARGET_DIR]);
        Step::cargo(title, &all)
    };
    let under_qemu = |step: Step| step.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", RUNNER);
    // alsa-sys and jack-sys ask pkg-config, which refuses to answer for another target
    // unless allowed; the sysroot `/` keeps the paths it answers as they are.
    let with_arm64_libs = |step: Step| {
        step.env("PKG_CONFIG_ALLOW_CROSS", "1")
            .env("PKG_CONFIG_LIBDIR", PKG_CONFIG_LIBDIR)
            .env("PKG_CONFIG_SYSROOT_DIR", "/")
    };
    vec![
        // 16 MiB stacks, as in the workspace tests: racks live on the test threads' stacks.
        under_qemu(cross("core tests on aarch64 (qemu)", &["test", "-p", "synthpool-core"]))
            .env("RUST_MIN_STACK", "16777216"),
        // The aarch64 render's checksum equals the firmware's, hence the x86-64 one's too.
        under_qemu(cross("demo checksum on aarch64 (qemu)", &["test", "-p", "firmware-sim", "--test", "checksum"])),
        with_arm64_libs(cross("server cross-builds for aarch64", &["build", "-p", "synthpool-host"])),
        // Only --version: the server itself starts worker processes, which qemu-aarch64
        // cannot exec without binfmt_misc. This shows the binary starts with the arm64
        // libasound it links.
        with_arm64_libs(under_qemu(cross(
            "server starts on aarch64 (qemu)",
            &["run", "-p", "synthpool-host", "--bin", "synthpool", "--", "--version"],
        ))),
    ]
}
