//! The DSP units, one per file. Each has, in this order: its [`DESCRIPTION`](vca::DESCRIPTION)
//! (ports and parameters, see [`crate::describe`]), `const fn new()`, `prepare`, `reset`,
//! clamping `set_*` methods that ignore non-finite values, `set_param` (by the description's
//! index), and `process`.
pub mod adsr;
pub mod delay;
pub mod input;
pub mod lfo;
pub mod mixer;
pub mod noise;
pub mod output;
pub mod reverb;
pub mod sequencer;
pub mod vca;
pub mod vcf;
pub mod vco;
