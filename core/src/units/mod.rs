//! The DSP units, one per file. Each has, in this order: `const fn new()`, `prepare`,
//! `reset`, clamping `set_*` methods that ignore non-finite values, and `process`.
pub mod adsr;
pub mod delay;
pub mod lfo;
pub mod mixer;
pub mod noise;
pub mod reverb;
pub mod vca;
pub mod vcf;
pub mod vco;
