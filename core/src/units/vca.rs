//! vca: being written.
