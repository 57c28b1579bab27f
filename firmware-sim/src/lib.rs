//! The firmware simulation (issue 5) builds here.
#![no_std]
