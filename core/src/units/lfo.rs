//! lfo: being written.
