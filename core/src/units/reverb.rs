//! reverb: being written.
