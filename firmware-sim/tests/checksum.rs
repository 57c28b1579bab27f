//! The host renders the demo bit for bit as the firmware does: the same loop
//! (`firmware_sim::render`), the same script and length, with the firmware's rack and with
//! the host's (they differ only in capacity), hashed the same way, against the total the
//! firmware logged under QEMU (`expected/demo.out`, written by `cargo xtask firmware --bless`).
use firmware_sim::{DEMO_BLOCKS, DEMO_SCRIPT, FNV1A_OFFSET, Rendered, fnv1a_f32, render};
use synthpool_core::BLOCK;
use synthpool_core::rack::{FirmwareRack, HostRack};

/// The demo's total as the firmware logged it: `INFO  total: fnv1a 0x... over N samples`.
fn firmware_total() -> (u64, u64) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/expected/demo.out");
    let log =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}; run `cargo xtask firmware --bless`"));
    let line = log.lines().find_map(|l| l.strip_prefix("INFO  total: fnv1a ")).expect("demo.out has a total line");
    let (hash, samples) = line.split_once(" over ").expect("total line: HASH over N samples");
    let hash = u64::from_str_radix(hash.trim_start_matches("0x"), 16).expect("hex checksum");
    let samples = samples.trim_end_matches(" samples").parse().expect("sample count");
    (hash, samples)
}

/// Renders the demo with a rack built by `new_rack`, on a thread whose stack holds it (the
/// host rack is 31.9 MB of fixed arrays).
fn render_demo<R: Send + 'static>(new_rack: fn() -> Box<R>, render: fn(&mut R) -> Rendered) -> Rendered {
    std::thread::Builder::new()
        // 4 racks: building one by value takes up to 3 racks of stack (opt-level 0; see
        // host/src/render.rs's RACK_BUILDER_STACK); 1 MiB for the render itself.
        .stack_size(4 * size_of::<R>() + (1 << 20))
        .spawn(move || render(&mut new_rack()))
        .expect("spawn the render thread")
        .join()
        .expect("the render thread finished")
}

fn no_block(_: u64, _: &synthpool_core::block::StereoBlock, _: u64) {}

fn refused(line: usize, error: synthpool_core::command::Error) {
    panic!("demo line {line} refused: {error}");
}

#[test]
fn firmware_rack_on_the_host_matches_the_firmware() {
    let rendered =
        render_demo(|| Box::new(FirmwareRack::new()), |rack| render(rack, DEMO_SCRIPT, DEMO_BLOCKS, no_block, refused));
    assert_eq!(rendered.refused, 0);
    assert_eq!(rendered.samples, DEMO_BLOCKS * 2 * BLOCK as u64);
    let (checksum, samples) = firmware_total();
    assert_eq!(rendered.samples, samples, "expected/demo.out is for another length: re-bless it");
    assert_eq!(
        rendered.checksum, checksum,
        "the host's render differs from the firmware's (expected/demo.out): {:#018x} != {checksum:#018x}",
        rendered.checksum
    );
}

#[test]
fn host_rack_sounds_like_the_firmware_rack() {
    let firmware =
        render_demo(|| Box::new(FirmwareRack::new()), |rack| render(rack, DEMO_SCRIPT, DEMO_BLOCKS, no_block, refused));
    let host =
        render_demo(|| Box::new(HostRack::new()), |rack| render(rack, DEMO_SCRIPT, DEMO_BLOCKS, no_block, refused));
    assert_eq!(host, firmware, "HostRack and FirmwareRack differ only in capacity: the demo fits both");
}

#[test]
fn checksum_is_fnv1a_over_little_endian_bit_patterns() {
    // FNV-1a 64 of no bytes is the offset basis; of the byte 0x61 ("a") it is 0xaf63dc4c8601ec8c
    // (the FNV reference vectors).
    assert_eq!(fnv1a_f32(FNV1A_OFFSET, &[]), FNV1A_OFFSET);
    let bytes_a = f32::from_bits(u32::from_le_bytes(*b"abcd"));
    let by_bytes = b"abcd".iter().fold(FNV1A_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    assert_eq!(fnv1a_f32(FNV1A_OFFSET, &[bytes_a]), by_bytes);
    assert_eq!((FNV1A_OFFSET ^ 0x61).wrapping_mul(0x100_0000_01b3), 0xaf63_dc4c_8601_ec8c);
    // Bit patterns, not values.
    assert_ne!(fnv1a_f32(FNV1A_OFFSET, &[0.0]), fnv1a_f32(FNV1A_OFFSET, &[-0.0]));
}

#[test]
fn the_demo_has_no_dc_on_either_channel() {
    // The whole demo (its last line is at 32 s: 24,000 blocks); the mean of its tones over a
    // stretch of whole and part cycles is tiny, so what is left is an offset.
    const WHOLE_DEMO_BLOCKS: u64 = 24_000;
    let sums = std::thread::Builder::new()
        .stack_size(4 * size_of::<FirmwareRack>() + (1 << 20))
        .spawn(|| {
            let mut sums = [0.0f64; 2];
            let mut rack = Box::new(FirmwareRack::new());
            let on_block = |_: u64, both: &synthpool_core::block::StereoBlock, _: u64| {
                for (sum, channel) in sums.iter_mut().zip(both) {
                    *sum += channel.iter().map(|&x| f64::from(x)).sum::<f64>();
                }
            };
            render(&mut rack, DEMO_SCRIPT, WHOLE_DEMO_BLOCKS, on_block, refused);
            sums
        })
        .expect("spawn the render thread")
        .join()
        .expect("the render thread finished");
    for (side, sum) in ["left", "right"].iter().zip(sums) {
        let mean = sum / (WHOLE_DEMO_BLOCKS * BLOCK as u64) as f64;
        assert!(mean.abs() < 1e-3, "{side}: DC {mean}");
    }
}
