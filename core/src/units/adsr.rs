//! adsr: being written.
