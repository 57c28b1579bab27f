//! delay: being written.
