//! Integration tests of kadns-record.

mod vectors;
