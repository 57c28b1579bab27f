//! What the units share: denormal flushing, deterministic maths, band-limiting, tables.
pub mod flush;
pub mod math;
pub mod polyblep;

pub use flush::flush;
