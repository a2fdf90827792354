//! Base64 (RFC 4648 §4): the SMTP client's AUTH exchanges (RFC 4954) and the PEM blocks
//! of the TLS files the configuration names. One alphabet and one way of reading it: a
//! server's challenge leniently ([`decode_lenient`]), a PEM block strictly
//! ([`decode_strict`]). Never panics, whatever the text.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

/// The alphabet, in the order of the values.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `data` as base64, with padding.
pub fn encode(data: &[u8]) -> String {
    let sextet =
        |n: u32, shift: u32| char::from(*ALPHABET.get((n >> shift) as usize & 63).unwrap_or(&b'='));
    let mut o = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let byte = |i: usize| u32::from(c.get(i).copied().unwrap_or(0));
        let n = byte(0) << 16 | byte(1) << 8 | byte(2);
        o.push(sextet(n, 18));
        o.push(sextet(n, 12));
        o.push(if c.len() > 1 { sextet(n, 6) } else { '=' });
        o.push(if c.len() > 2 { sextet(n, 0) } else { '=' });
    }
    o
}

/// The value of an octet of the alphabet; `None` for any other.
fn value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// The octets the 6-bit `values` make (left-over bits dropped).
fn from_values(values: impl Iterator<Item = u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in values {
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decoding as a server's challenge is read: octets outside the alphabet (padding, white
/// space, anything else) are skipped.
pub fn decode_lenient(s: &str) -> Vec<u8> {
    from_values(s.bytes().filter_map(value))
}

/// Decoding of base64 with its padding and nothing else (a length a multiple of 4, at
/// most two `=` at the end); `None` for any other text.
pub fn decode_strict(s: &str) -> Option<Vec<u8>> {
    let data = s.trim_end_matches('=');
    if s.len() - data.len() > 2 || !s.len().is_multiple_of(4) {
        return None;
    }
    let values = data.bytes().map(value).collect::<Option<Vec<u32>>>()?;
    Some(from_values(values.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(i.as_bytes()), o);
            assert_eq!(decode_strict(o).as_deref(), Some(i.as_bytes()), "{o}");
            assert_eq!(decode_lenient(o), i.as_bytes(), "{o}");
        }
        assert_eq!(encode(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn strict_refuses_what_lenient_skips() {
        for bad in ["Zg=", "Zm9v\n", "Zg===", "Z===", "Zm 9", "Zm=v", "Zm\u{e9}"] {
            assert_eq!(decode_strict(bad), None, "{bad:?}");
        }
        assert_eq!(decode_lenient("Zm 9v\r\n"), b"foo");
        assert_eq!(decode_lenient("Zm=9v"), b"foo");
    }
}
