//! serde <-> bytes. The one seam between messages and the ring: bincode 2.x
//! through its serde API by default, postcard with the `postcard` feature.
//!
//! bincode 3.0.0 is a tombstone release and 2.x is flagged unmaintained
//! (RUSTSEC-2025-0141); 2.0.1 is stable and audited enough for a wire format
//! that never leaves the machine, and postcard is one feature away.
#![deny(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::Serialize;

#[cfg(not(any(feature = "bincode", feature = "postcard")))]
compile_error!("shmpsc needs a codec: enable the `bincode` (default) or `postcard` feature");

/// Name of the codec, part of every channel's fingerprint.
#[cfg(feature = "postcard")]
pub(crate) const NAME: &str = "postcard-1";
/// Name of the codec, part of every channel's fingerprint.
#[cfg(all(feature = "bincode", not(feature = "postcard")))]
pub(crate) const NAME: &str = "bincode-2-standard";

#[cfg(all(feature = "bincode", not(feature = "postcard")))]
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes `value` at the start of `buf`, which it grows as needed (and
/// which the caller keeps for the next message); returns the length of the
/// encoding.
pub(crate) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<usize, String> {
    #[cfg(feature = "postcard")]
    {
        buf.clear();
        let out = std::mem::take(buf);
        match postcard::to_extend(value, out) {
            Ok(v) => {
                *buf = v;
                Ok(buf.len())
            }
            Err(e) => Err(e.to_string()),
        }
    }
    #[cfg(all(feature = "bincode", not(feature = "postcard")))]
    {
        use bincode::error::EncodeError;
        // Into a slice, bincode writes with one bounds check per field; into
        // a `Vec` through `io::Write`, with a capacity check and a call per
        // field (about a third slower for a small message). A buffer that
        // turns out too small is doubled and the value encoded again: once
        // per growth, since the buffer is kept. Past `SLICE_LIMIT` the
        // encoding goes through a `Vec`, which learns the size in one pass.
        const FIRST: usize = 256;
        const SLICE_LIMIT: usize = 1 << 20;
        if buf.len() < FIRST {
            buf.resize(FIRST, 0);
        }
        loop {
            match bincode::serde::encode_into_slice(value, buf.as_mut_slice(), CONFIG) {
                Ok(n) => return Ok(n),
                Err(EncodeError::UnexpectedEnd) if buf.len() < SLICE_LIMIT => {
                    buf.resize(buf.len() * 2, 0);
                }
                Err(EncodeError::UnexpectedEnd) => {
                    buf.clear();
                    return bincode::serde::encode_into_std_write(value, buf, CONFIG)
                        .map_err(|e| e.to_string());
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Decodes one message that must span exactly `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    #[cfg(feature = "postcard")]
    {
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((v, rest)) if rest.is_empty() => Ok(v),
            Ok((_, rest)) => Err(format!("{} trailing bytes after the message", rest.len())),
            Err(e) => Err(e.to_string()),
        }
    }
    #[cfg(all(feature = "bincode", not(feature = "postcard")))]
    {
        // bincode allocates a string's or a byte buffer's claimed length
        // before reading it, so an unlimited decoder lets a hostile length
        // prefix abort the receiver. bincode's limit counts decoded bytes:
        // a primitive counts its in-memory size (a `u128` decoded from a
        // one-byte varint counts 16), a string or byte buffer its length,
        // which cannot exceed the payload. So 32 times the payload length
        // bounds what a well-formed message can claim, with room to spare,
        // and bounds what a hostile one can make the receiver allocate. The
        // limit is rounded up to a power of 16 to keep few copies of the
        // decoder.
        macro_rules! limited {
            ($($bits:literal)*) => {{
                let claim = (bytes.len() as u64).saturating_mul(32);
                $(
                    if claim <= 1u64 << $bits {
                        bincode::serde::decode_from_slice::<T, _>(
                            bytes,
                            CONFIG.with_limit::<{ 1usize << $bits }>(),
                        )
                    } else
                )* {
                    bincode::serde::decode_from_slice::<T, _>(
                        bytes,
                        CONFIG.with_limit::<{ 1usize << 40 }>(),
                    )
                }
            }};
        }
        match limited!(16 20 24 28 32 36) {
            Ok((v, used)) if used == bytes.len() => Ok(v),
            Ok((_, used)) => Err(format!(
                "{} trailing bytes after the message",
                bytes.len() - used
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Event {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    #[test]
    fn round_trip() {
        let ev = Event {
            id: 42,
            name: "hello".into(),
            data: vec![1, 2, 3],
        };
        let mut buf = vec![9, 9, 9];
        let n = encode(&ev, &mut buf).unwrap();
        assert_eq!(decode::<Event>(&buf[..n]).unwrap(), ev);
    }

    #[test]
    fn one_buffer_serves_growing_and_shrinking_messages() {
        // The buffer is kept between messages: it grows by doubling, goes
        // through a `Vec` past the slice limit, and leaves stale bytes after
        // a shorter encoding, which the returned length excludes.
        let mut buf = Vec::new();
        for len in [0usize, 300, 5, 70_000, 3, (1 << 20) + 10, 1, 600_000, 0] {
            let ev = Event {
                id: len as u64,
                name: "n".repeat(len % 7),
                data: vec![len as u8; len],
            };
            let n = encode(&ev, &mut buf).unwrap();
            assert!(buf.len() >= n);
            assert_eq!(decode::<Event>(&buf[..n]).unwrap(), ev, "{len} bytes");
        }
    }

    #[test]
    fn large_and_dense_messages_decode() {
        // Decoded sizes well above the encoded size, at and around the
        // powers of two where the decoder's limit changes.
        for n in [1usize, 1000, 2047, 2048, 2049, 65_536, 1 << 20] {
            let mut buf = Vec::new();
            let ones = vec![1u64; n];
            let len = encode(&ones, &mut buf).unwrap();
            assert_eq!(decode::<Vec<u64>>(&buf[..len]).unwrap(), ones, "{n} u64s");
            let wide = vec![1u128; n.min(1 << 16)];
            let len = encode(&wide, &mut buf).unwrap();
            assert_eq!(decode::<Vec<u128>>(&buf[..len]).unwrap(), wide, "{n} u128s");
        }
        for len in [65_526usize, 65_536, 65_537, 1 << 20] {
            let ev = Event {
                id: 1,
                name: "x".repeat(len % 100),
                data: vec![7; len],
            };
            let mut buf = Vec::new();
            let n = encode(&ev, &mut buf).unwrap();
            assert_eq!(decode::<Event>(&buf[..n]).unwrap(), ev, "{len} bytes");
        }
    }

    #[test]
    fn hostile_length_prefix_is_an_error_not_an_abort() {
        // A string that claims 2^40 bytes (and one that claims more than
        // isize::MAX), with three bytes present.
        for len in [1u64 << 40, u64::MAX] {
            let mut buf = Vec::new();
            #[cfg(all(feature = "bincode", not(feature = "postcard")))]
            {
                buf.push(0xFD);
                buf.extend_from_slice(&len.to_le_bytes());
            }
            #[cfg(feature = "postcard")]
            {
                let mut v = len;
                while v >= 0x80 {
                    buf.push((v as u8) | 0x80);
                    v >>= 7;
                }
                buf.push(v as u8);
            }
            buf.extend_from_slice(b"abc");
            assert!(decode::<String>(&buf).is_err());
            assert!(decode::<Vec<u8>>(&buf).is_err());
            assert!(decode::<Vec<u64>>(&buf).is_err());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Event>(&[0xFF; 3]).is_err());
        assert!(decode::<Event>(&[]).is_err());
        let mut buf = Vec::new();
        let n = encode(&7u8, &mut buf).unwrap();
        buf.truncate(n);
        buf.push(0);
        let e = decode::<u8>(&buf).unwrap_err();
        assert!(e.contains("trailing"), "{e}");
    }
}
