//! noise: being written.
