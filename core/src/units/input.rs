//! Input: the audio input (the capture side of the host's device), as a module. It has no
//! state of its own: the rack hands it the capture block ([`crate::rack::Rack::capture_mut`])
//! each block. On the firmware nothing writes the capture, so it is silence.
use crate::block::{Block, StereoBlock};
use crate::describe::{STEREO_OUTS, UnitDescription};

/// The input as the protocol sees it.
pub const DESCRIPTION: UnitDescription =
    UnitDescription { name: "input", inputs: &[], outputs: &STEREO_OUTS, params: &[] };

/// Writes `capture` to `channels` and its mono signal, `(left + right) / 2` (a source
/// centred between the channels keeps its level), to `out`.
pub fn process(capture: &StereoBlock, out: &mut Block, channels: &mut StereoBlock) {
    let [left, right] = capture;
    for ((y, l), r) in out.iter_mut().zip(left).zip(right) {
        *y = 0.5 * (l + r);
    }
    *channels = *capture;
}
