//! The secret's text format: a prefix, 43 base62 characters of randomness and
//! a 6-character base62 CRC32 checksum of everything before it.

use std::fmt;

use rand::{TryRngCore, rngs::OsRng};

use super::Secret;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters that encode 32 random bytes: 62^43 exceeds 2^256.
pub const BODY_LEN: usize = 43;
/// Characters that encode a CRC32: 62^6 exceeds 2^32.
pub const CHECKSUM_LEN: usize = 6;
/// Maximum input length before any parsing, header scheme included.
pub const MAX_INPUT_LEN: usize = 255;
/// Maximum prefix length.
pub const MAX_PREFIX_LEN: usize = 16;

/// Why a value is not a well-formed token. The variants never carry the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The value is empty or only whitespace.
    Empty,
    /// The value is longer than 255 characters.
    TooLong,
    /// The value contains a character outside ASCII.
    NonAscii,
    /// The value contains a control character.
    ControlCharacter,
    /// The value has the wrong length, prefix or alphabet.
    Shape,
    /// The checksum does not match the rest of the token.
    Checksum,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self {
            Self::Empty => "the token is empty",
            Self::TooLong => "the token is longer than 255 characters",
            Self::NonAscii => "the token contains non-ASCII characters",
            Self::ControlCharacter => "the token contains control characters",
            Self::Shape => "the token does not have the expected prefix, length or characters",
            Self::Checksum => "the token checksum does not match",
        };
        f.write_str(reason)
    }
}

/// Error for a prefix that the configuration cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token prefix {0:?}: expected 1 to {MAX_PREFIX_LEN} characters of a-z, 0-9 or '_'")]
pub struct InvalidPrefix(pub String);

/// Generates and parses secrets with one configured prefix.
#[derive(Debug, Clone)]
pub struct TokenFormat {
    prefix: String,
}

impl TokenFormat {
    /// Creates a format with `prefix`, such as `tkn_`.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidPrefix`] unless the prefix is 1 to 16 characters of
    /// lowercase ASCII letters, digits and underscores. Base62 letters are not
    /// all lowercase, so this keeps the prefix boundary unambiguous for
    /// secret scanners.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// Returns the configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the length of every secret in this format.
    pub fn secret_len(&self) -> usize {
        self.prefix.len() + BODY_LEN + CHECKSUM_LEN
    }

    /// Generates a new secret from 32 bytes of operating-system randomness.
    ///
    /// # Errors
    ///
    /// Returns the operating system's error when it cannot supply randomness.
    pub fn generate(&self) -> Result<Secret, rand::rand_core::OsError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.try_fill_bytes(bytes.as_mut())?;

        let mut text = String::with_capacity(self.secret_len());
        text.push_str(&self.prefix);
        push_base62(&mut text, bytes.as_mut(), BODY_LEN);
        let checksum = crc32fast::hash(text.as_bytes());
        push_base62(&mut text, &mut checksum.to_be_bytes(), CHECKSUM_LEN);
        Ok(Secret::new(text))
    }

    /// Extracts the token from a bare value or a whole `Bearer <token>`
    /// header value, and checks its shape and checksum.
    ///
    /// The scheme matches case-insensitively, one or more spaces may follow
    /// it, and surrounding ASCII whitespace is trimmed. No hashing or I/O
    /// happens here, so a malformed value costs only this scan.
    ///
    /// # Errors
    ///
    /// Returns the first rule the value breaks.
    pub fn parse<'a>(&self, raw: &'a str) -> Result<&'a str, Malformed> {
        if raw.len() > MAX_INPUT_LEN {
            return Err(Malformed::TooLong);
        }
        if !raw.is_ascii() {
            return Err(Malformed::NonAscii);
        }
        let mut token = raw.trim_ascii();
        if let Some(rest) = strip_bearer(token) {
            token = rest;
        }
        if token.is_empty() {
            return Err(Malformed::Empty);
        }
        if token.bytes().any(|b| b.is_ascii_control()) {
            return Err(Malformed::ControlCharacter);
        }

        let Some(rest) = token.strip_prefix(self.prefix.as_str()) else {
            return Err(Malformed::Shape);
        };
        if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Malformed::Shape);
        }

        let (signed, checksum) = token.split_at(token.len() - CHECKSUM_LEN);
        let mut expected = String::with_capacity(CHECKSUM_LEN);
        push_base62(
            &mut expected,
            &mut crc32fast::hash(signed.as_bytes()).to_be_bytes(),
            CHECKSUM_LEN,
        );
        if expected != checksum {
            return Err(Malformed::Checksum);
        }
        Ok(token)
    }

    /// Returns the display hint of a secret: the prefix, an ellipsis and the
    /// last four characters.
    pub fn display_hint(&self, secret: &Secret) -> String {
        let text = secret.expose();
        let tail = &text[text.len().saturating_sub(4)..];
        format!("{}…{tail}", self.prefix)
    }
}

/// Strips a case-insensitive `Bearer` scheme followed by at least one space.
fn strip_bearer(value: &str) -> Option<&str> {
    const SCHEME: &str = "bearer";
    let head = value.get(..SCHEME.len())?;
    if !head.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = &value[SCHEME.len()..];
    rest.starts_with(' ').then(|| rest.trim_start_matches(' '))
}

/// Appends `bytes`, read as one big-endian number, as exactly `width` base62
/// digits with leading zeros. The caller picks `width` large enough for the
/// number. The buffer is consumed as scratch space.
fn push_base62(out: &mut String, bytes: &mut [u8], width: usize) {
    let mut digits = [0u8; BODY_LEN];
    for slot in digits[..width].iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in bytes.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    out.extend(digits[..width].iter().map(|&d| char::from(d)));
    zeroize::Zeroize::zeroize(&mut digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> TokenFormat {
        TokenFormat::new("tkn_").unwrap()
    }

    #[test]
    fn generated_secret_has_fixed_shape() {
        let secret = format().generate().unwrap();
        let text = secret.expose();
        assert_eq!(text.len(), 4 + 43 + 6);
        assert!(text.starts_with("tkn_"));
        assert!(text[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn generated_secret_parses() {
        let format = format();
        let secret = format.generate().unwrap();
        assert_eq!(format.parse(secret.expose()), Ok(secret.expose()));
    }

    #[test]
    fn secrets_differ() {
        let format = format();
        let first = format.generate().unwrap();
        let second = format.generate().unwrap();
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn bearer_forms_parse() {
        let format = format();
        let secret = format.generate().unwrap();
        let token = secret.expose();
        for raw in [
            format!("Bearer {token}"),
            format!("bearer {token}"),
            format!("BEARER    {token}"),
            format!("  \t Bearer {token} \r\n"),
            format!(" {token} "),
        ] {
            assert_eq!(format.parse(&raw), Ok(token), "input {raw:?}");
        }
    }

    #[test]
    fn bearer_without_space_is_malformed() {
        let format = format();
        let secret = format.generate().unwrap();
        let raw = format!("Bearer{}", secret.expose());
        assert_eq!(format.parse(&raw), Err(Malformed::Shape));
        assert_eq!(format.parse("Bearer "), Err(Malformed::Shape));
    }

    #[test]
    fn changed_letter_fails_checksum() {
        let format = format();
        let secret = format.generate().unwrap();
        let mut bytes = secret.expose().as_bytes().to_vec();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_eq!(format.parse(&changed), Err(Malformed::Checksum));
    }

    #[test]
    fn bad_inputs_are_classified() {
        let format = format();
        assert_eq!(format.parse(""), Err(Malformed::Empty));
        assert_eq!(format.parse("   "), Err(Malformed::Empty));
        assert_eq!(format.parse(&"a".repeat(256)), Err(Malformed::TooLong));
        assert_eq!(format.parse("tkn_é"), Err(Malformed::NonAscii));
        assert_eq!(format.parse("tkn_a\0b"), Err(Malformed::ControlCharacter));
        assert_eq!(format.parse("tkn_short"), Err(Malformed::Shape));
        assert_eq!(format.parse("ghp_aaaa"), Err(Malformed::Shape));
    }

    #[test]
    fn other_prefix_is_malformed() {
        let secret = format().generate().unwrap();
        let other = TokenFormat::new("xyz_").unwrap();
        assert_eq!(other.parse(secret.expose()), Err(Malformed::Shape));
    }

    #[test]
    fn prefix_rules_are_enforced() {
        assert!(TokenFormat::new("").is_err());
        assert!(TokenFormat::new("TKN_").is_err());
        assert!(TokenFormat::new("a".repeat(17).as_str()).is_err());
        assert!(TokenFormat::new("acme_pat_").is_ok());
    }

    #[test]
    fn base62_encodes_max_values() {
        let mut out = String::new();
        push_base62(&mut out, &mut [0xff; 32], BODY_LEN);
        assert_eq!(out.len(), BODY_LEN);
        let mut out = String::new();
        push_base62(&mut out, &mut u32::MAX.to_be_bytes(), CHECKSUM_LEN);
        assert_eq!(out, "4gfFC3");
    }

    #[test]
    fn display_hint_shows_last_four() {
        let format = format();
        let secret = format.generate().unwrap();
        let hint = format.display_hint(&secret);
        assert!(hint.starts_with("tkn_…"));
        assert!(secret.expose().ends_with(&hint["tkn_…".len()..]));
    }
}
