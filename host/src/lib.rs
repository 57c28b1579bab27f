//! synthpool-host: the std shell around the core.
