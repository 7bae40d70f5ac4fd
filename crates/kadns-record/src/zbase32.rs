//! z-base-32 (<https://philzimmermann.com/docs/human-oriented-base-32-encoding.txt>),
//! the alphabet used for zone ids. Only what kadns needs: whole bytes in, and a
//! strict decoder that rejects non-zero padding bits so that every key has
//! exactly one spelling.

const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Encodes bytes, most significant bit first, padding the last character with zeros.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol((buffer >> bits) & 0x1f));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol((buffer << (5 - bits)) & 0x1f));
    }
    out
}

fn symbol(index: u16) -> char {
    // `index` is masked to five bits by every caller, so it is always in range.
    ALPHABET
        .get(usize::from(index))
        .map(|&b| char::from(b))
        .unwrap_or('?')
}

fn value(c: u8) -> Option<u16> {
    let c = c.to_ascii_lowercase();
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u16::try_from(p).ok())
}

/// Why a z-base-32 string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zbase32Error {
    /// A character outside the alphabet, at this index.
    Character(usize),
    /// The string's length does not encode whole bytes of the expected count.
    Length,
    /// The unused low bits of the last character are not zero.
    Padding,
}

/// Decodes exactly `N` bytes (case-insensitive).
pub(crate) fn decode<const N: usize>(text: &str) -> Result<[u8; N], Zbase32Error> {
    if text.len() != (N * 8).div_ceil(5) {
        return Err(Zbase32Error::Length);
    }
    let mut out = [0u8; N];
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    let mut written = 0;
    for (index, c) in text.bytes().enumerate() {
        let v = value(c).ok_or(Zbase32Error::Character(index))?;
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            let slot = out.get_mut(written).ok_or(Zbase32Error::Length)?;
            *slot = ((buffer >> bits) & 0xff) as u8;
            written += 1;
            buffer &= (1 << bits) - 1;
        }
    }
    if buffer != 0 {
        return Err(Zbase32Error::Padding);
    }
    if written != N {
        return Err(Zbase32Error::Length);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // From the z-base-32 specification's examples.
        assert_eq!(encode(&[0xf0, 0xbf, 0xc7]), "6n9hq");
        assert_eq!(encode(&[0xd4, 0x7a, 0x04]), "4t7ye");
        assert_eq!(encode(&[0u8; 32]), "y".repeat(52));
    }

    #[test]
    fn round_trip_and_strictness() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let text = encode(&bytes);
        assert_eq!(text.len(), 52);
        assert_eq!(decode::<32>(&text), Ok(bytes));
        assert_eq!(decode::<32>(&text.to_uppercase()), Ok(bytes));
        assert_eq!(decode::<32>(&text[..51]), Err(Zbase32Error::Length));
        assert_eq!(
            decode::<32>(&format!("{}0", &text[..51])),
            Err(Zbase32Error::Character(51))
        );
        // 256 bits in 52 characters leaves 4 padding bits in the last one.
        let mut padded = text.clone();
        padded.pop();
        padded.push('n'); // value 2: a padding bit set
        assert_eq!(decode::<32>(&padded), Err(Zbase32Error::Padding));
    }
}
