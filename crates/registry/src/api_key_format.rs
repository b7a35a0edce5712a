//! The API key format: `ghk_` + 43 base62 characters (≥ 256 random bits) + a 6-character
//! base62 CRC-32 checksum of everything before it. Scanners can recognise leaked keys by the
//! prefix, and a mistyped or truncated key is refused before any lookup.

use sha2::{Digest, Sha256};

/// The recognisable prefix.
pub const PREFIX: &str = "ghk_";
const RANDOM_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Total length of a key.
pub const LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// Characters shown for display (`ghk_` + 8).
pub const DISPLAY_PREFIX_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh key from the OS CSPRNG.
pub fn generate() -> crate::secret::SecretString {
    let body = format!("{PREFIX}{}", crate::ids::base62(RANDOM_LEN));
    let sum = checksum(&body);
    crate::secret::SecretString::new(format!("{body}{sum}"))
}

/// Whether `key` has the shape and checksum of a Gatehouse API key.
pub fn is_well_formed(key: &str) -> bool {
    if key.len() != LEN || !key.starts_with(PREFIX) {
        return false;
    }
    let Some(rest) = key.get(PREFIX.len()..) else {
        return false;
    };
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, sum) = key.split_at(LEN - CHECKSUM_LEN);
    crate::secret::ct_eq(checksum(body).as_bytes(), sum.as_bytes())
}

/// The stored form: hex SHA-256 of the key.
pub fn digest(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = Sha256::digest(key.as_bytes());
    // One allocation, no formatting machinery: this runs on every API-key request (the
    // profile showed `format!` per byte at 10 % of an introspection).
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The part safe to display.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn digest_is_lowercase_hex_sha256() {
        // FIPS 180-2 test vector; stored digests must not change form.
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_are_well_formed_and_typos_are_not() {
        let key = generate();
        let k = key.expose_secret();
        assert_eq!(k.len(), LEN);
        assert!(is_well_formed(k));
        let mut chars: Vec<char> = k.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(!is_well_formed(&typo));
        assert!(!is_well_formed(&k[..LEN - 1]));
        assert!(!is_well_formed(&k.replacen("ghk_", "ghx_", 1)));
        assert!(!is_well_formed(""));
        assert_eq!(display_prefix(k).len(), 12);
        assert_eq!(digest(k).len(), 64);
    }
}
