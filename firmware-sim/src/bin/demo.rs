//! The demo patch on a Cortex-M4F: renders `demo/demo.osc` for [`DEMO_BLOCKS`] blocks with
//! the firmware's rack and logs the running FNV-1a checksum of the audio every
//! [`LOG_EVERY_BLOCKS`] blocks, then the total. `cargo xtask firmware` compares the log with
//! `firmware-sim/expected/demo.out`; `tests/checksum.rs` renders the same on the host.
//!
//! On the host this compiles to an empty program, so `cargo test --workspace` can build it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    use firmware_sim::{DEMO_BLOCKS, DEMO_SCRIPT, LOG_EVERY_BLOCKS, SAMPLE_RATE_HZ, peak, render};
    use synthpool_core::BLOCK;
    use synthpool_core::rack::FirmwareRack;

    defmt::info!(
        "demo: {=u64} blocks of {=usize} frames at {=u32} Hz, firmware rack",
        DEMO_BLOCKS,
        BLOCK,
        SAMPLE_RATE_HZ
    );
    // On the stack (4 MiB of RAM): the rack is ~263 KiB, mostly the delay and reverb lines,
    // and a static would need `static mut` or a 263 KiB .data image.
    let mut rack = FirmwareRack::new();
    let rendered = render(
        &mut rack,
        DEMO_SCRIPT,
        DEMO_BLOCKS,
        |index, block, checksum| {
            if (index + 1) % LOG_EVERY_BLOCKS == 0 {
                defmt::info!("block {=u64}: fnv1a {=u64:#018x}, peak {=f32}", index, checksum, peak(block));
            }
        },
        |line, error| defmt::warn!("line {=usize} refused: {=str}", line, error.name()),
    );
    defmt::info!(
        "{=u32} lines applied, {=u32} refused; {=u32} modules, {=u32} cables",
        rendered.applied,
        rendered.refused,
        rack.module_count() as u32,
        rack.cable_count() as u32
    );
    defmt::info!("total: fnv1a {=u64:#018x} over {=u64} samples", rendered.checksum, rendered.samples);
    firmware_sim::exit(0)
}
