//! Hostile fixtures: random edits of a real fixture's bytes are parsed into
//! an error or a fixture — and a parsed fixture runs through the Rust loss —
//! without a panic.

use std::path::Path;

use proptest::prelude::*;

use ce_parity::fixtures;
use ce_parity::runner::run_rust;

/// Bytes that make JSON interesting when dropped in: structure, numbers, signs.
const SPICE: &[u8] = b"{}[]\",:-0123456789.eE naif";

#[derive(Clone, Debug)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Spice(prop::sample::Index, prop::sample::Index),
    Delete(prop::sample::Index, usize),
    Duplicate(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(i, s)| Mutation::Spice(i, s)),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Spice(i, s) => {
            let i = i.index(bytes.len());
            bytes[i] = SPICE[s.index(SPICE.len())];
        }
        Mutation::Delete(i, n) => {
            let i = i.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Duplicate(i, n) => {
            let i = i.index(bytes.len());
            let end = (i + n).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(i..i, copy);
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn mutated_fixture_bytes_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/article.json");
        let mut bytes = std::fs::read(&path).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        match fixtures::parse(Path::new("mutated.json"), &text) {
            Ok(parsed) => {
                for case in &parsed.cases {
                    let _ = run_rust(case);
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("mutated.json")),
        }
    }
}
