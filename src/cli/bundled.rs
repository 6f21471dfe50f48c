//! The fixtures under `fixtures/`, compiled into the binary by build.rs, so
//! `ce-parity check` works from any directory.

include!(concat!(env!("OUT_DIR"), "/bundled_fixtures.rs"));
