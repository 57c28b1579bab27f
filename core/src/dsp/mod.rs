//! What the units share: denormal flushing, deterministic maths, band-limiting, tables.
pub mod flush;
pub mod math;
pub mod polyblep;
pub mod random;

pub use flush::flush;
