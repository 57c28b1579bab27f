//! Patches shared by the benchmarks.
