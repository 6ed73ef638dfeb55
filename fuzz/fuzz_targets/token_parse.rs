//! Fuzzes `TokenFormat::parse`, the single parser behind Validate's `token`
//! field and every caller's `authorization` metadata.
//!
//! Each input is used twice. First, the raw bytes are parsed as a token under
//! several prefixes, and any accepted value must have the exact shape of a
//! secret. Second, the same bytes drive a structured check: they pick the
//! body of a well-formed token, a `Bearer` header around it, and one byte to
//! change. The wrapped token must parse to itself, and the changed one must
//! never parse.

#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokend::domain::{
    Malformed, TokenFormat,
    token_format::{BODY_LEN, CHECKSUM_LEN, MAX_INPUT_LEN},
};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Prefixes under test: the default, a longer one, the shortest and the
/// longest that `TokenFormat::new` accepts.
const PREFIXES: [&str; 4] = ["tkn_", "acme_pat_", "a", "abcdefghijklmnop"];

/// Formats for `PREFIXES`, built once per process.
fn formats() -> &'static [TokenFormat] {
    static FORMATS: OnceLock<Vec<TokenFormat>> = OnceLock::new();
    FORMATS.get_or_init(|| {
        let formats: Vec<TokenFormat> = PREFIXES
            .iter()
            .map(|prefix| TokenFormat::new(prefix).expect("test prefix is valid"))
            .collect();
        // The structured check below builds tokens with its own checksum
        // code. A generated secret ties that code to the real generator.
        for format in &formats {
            let secret = format.generate().expect("read operating-system randomness");
            let text = secret.expose();
            let (signed, _) = text.split_at(text.len() - CHECKSUM_LEN);
            assert_eq!(
                with_checksum(signed),
                text,
                "the harness checksum differs from the generator's"
            );
            assert_eq!(format.parse(text), Ok(text));
        }
        formats
    })
}

/// Appends the base62 CRC32 checksum to `signed`, written independently of
/// the crate's encoder so that the two implementations check each other.
fn with_checksum(signed: &str) -> String {
    let mut checksum = crc32fast::hash(signed.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(checksum % 62) as usize];
        checksum /= 62;
    }
    let mut token = String::with_capacity(signed.len() + CHECKSUM_LEN);
    token.push_str(signed);
    token.extend(digits.iter().map(|&d| char::from(d)));
    token
}

/// Checks what an accepted token must look like, given the raw input.
fn check_accepted(format: &TokenFormat, raw: &str, token: &str) {
    assert!(
        raw.len() <= MAX_INPUT_LEN,
        "accepted an input over 255 bytes"
    );
    assert!(raw.is_ascii(), "accepted a non-ASCII input");

    assert_eq!(
        token.len(),
        format.secret_len(),
        "accepted token has the wrong length"
    );
    assert!(
        token.starts_with(format.prefix()),
        "accepted token lacks the prefix"
    );
    let rest = &token[format.prefix().len()..];
    assert!(
        rest.bytes().all(|b| b.is_ascii_alphanumeric()),
        "accepted token has characters outside base62"
    );

    let (signed, _) = token.split_at(token.len() - CHECKSUM_LEN);
    assert_eq!(
        with_checksum(signed),
        token,
        "accepted token has a wrong checksum"
    );

    // The returned slice is part of the input, and parsing it again is a
    // no-op, so the service hashes the same bytes whichever form arrived.
    assert!(
        raw.contains(token),
        "accepted token is not a slice of the input"
    );
    assert_eq!(format.parse(token), Ok(token), "parsing is not idempotent");
}

/// Parses arbitrary text under every prefix.
fn check_raw(raw: &str) {
    for format in formats() {
        let first = format.parse(raw);
        assert_eq!(first, format.parse(raw), "parsing is not deterministic");
        match first {
            Ok(token) => check_accepted(format, raw, token),
            Err(Malformed::TooLong) => assert!(raw.len() > MAX_INPUT_LEN),
            Err(Malformed::NonAscii) => assert!(!raw.is_ascii()),
            Err(_) => {}
        }
    }
}

/// A well-formed token, a header around it and a one-byte change to it.
#[derive(Debug, Arbitrary)]
struct Structured {
    format: u8,
    body: [u8; BODY_LEN],
    /// One bit per letter of "bearer": set means uppercase.
    scheme_case: u8,
    spaces_after_scheme: u8,
    leading_whitespace: u8,
    trailing_whitespace: u8,
    position: u8,
    replacement: u8,
}

fn check_structured(input: &Structured) {
    let format = &formats()[usize::from(input.format) % PREFIXES.len()];

    let mut signed = String::from(format.prefix());
    signed.extend(
        input
            .body
            .iter()
            .map(|&b| char::from(ALPHABET[usize::from(b) % 62])),
    );
    let token = with_checksum(&signed);
    assert_eq!(
        format.parse(&token),
        Ok(token.as_str()),
        "a well-formed token was rejected"
    );

    // The header forms that the input rules allow: scheme in any case, one
    // or more spaces after it, ASCII whitespace around the whole value.
    let scheme: String = "bearer"
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if input.scheme_case & (1 << i) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let whitespace = |count: u8, seed: u8| -> String {
        (0..count % 4)
            .map(|i| [' ', '\t', '\n', '\r'][usize::from(seed.wrapping_add(i)) % 4])
            .collect()
    };
    let header = format!(
        "{}{scheme}{}{token}{}",
        whitespace(input.leading_whitespace, input.trailing_whitespace),
        " ".repeat(1 + usize::from(input.spaces_after_scheme % 8)),
        whitespace(input.trailing_whitespace, input.leading_whitespace),
    );
    assert_eq!(
        format.parse(&header),
        Ok(token.as_str()),
        "the header form {header:?} did not parse to its token"
    );

    // One changed byte. CRC32 detects every error burst of up to 32 bits,
    // so a changed letter in the body or checksum must fail the checksum,
    // and any other change must fail earlier. Nothing may parse, least of
    // all to the original token.
    let mut bytes = token.clone().into_bytes();
    let position = usize::from(input.position) % bytes.len();
    if bytes[position] == input.replacement {
        return;
    }
    bytes[position] = input.replacement;
    let changed = String::from_utf8_lossy(&bytes);
    let result = format.parse(&changed);
    assert!(
        result.is_err(),
        "a token with byte {position} changed to {:#04x} parsed as {result:?}",
        input.replacement
    );
    let in_signed_part = position >= format.prefix().len();
    if in_signed_part && input.replacement.is_ascii_alphanumeric() {
        assert_eq!(
            result,
            Err(Malformed::Checksum),
            "a changed base62 letter at {position} was not caught by the checksum"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_raw(&String::from_utf8_lossy(data));

    let mut unstructured = Unstructured::new(data);
    if let Ok(input) = Structured::arbitrary(&mut unstructured) {
        check_structured(&input);
    }
});
