//! vco: being written.
