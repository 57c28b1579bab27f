//! mixer: being written.
