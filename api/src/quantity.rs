//! SHIM
