//! core tests
