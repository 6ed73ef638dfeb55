//! Replays the committed fuzzing seeds on the stable toolchain, so CI checks
//! every seed and every saved crash reproducer without a fuzzing build.
//! `bench/fuzz.sh` runs the fuzzers themselves for minutes.

use std::path::Path;

use tokend::domain::TokenFormat;

#[test]
fn token_parse_seeds_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/token_parse");
    let format = TokenFormat::new("tkn_").unwrap();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus exists") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(token) = format.parse(&text) {
            assert_eq!(
                token.len(),
                format.secret_len(),
                "an accepted token has the secret's length"
            );
            assert!(token.starts_with("tkn_"));
        }
        replayed += 1;
    }
    assert!(replayed >= 5, "only {replayed} seeds in {}", dir.display());
}
