//! What the units share: denormal flushing, deterministic maths, band-limiting, tables.
pub mod flush;
pub mod glide;
pub mod math;
pub mod polyblep;
pub mod random;

pub use flush::flush;
pub use glide::{Glide, Ramp};
