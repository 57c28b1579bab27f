//! vcf: being written.
