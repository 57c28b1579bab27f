//! Band-limited step corrections (PolyBLEP); written with the VCO.
