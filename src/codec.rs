//! serde <-> bytes. The one seam between messages and the ring: postcard by
//! default, bincode 2.x (through its serde API) with the `bincode` feature.
//! A channel says which it uses ([`Codec`], set with
//! [`Builder::codec`](crate::Builder::codec)); the codec is part of the
//! channel's fingerprint, so both ends must agree.
//!
//! postcard is the default: it is faster on small messages and decodes
//! faster in every shape measured, and bincode 2.x is flagged unmaintained
//! (RUSTSEC-2025-0141; 3.0.0 is a tombstone release), which cargo-audit and
//! cargo-deny would report to every user of a crate that depended on it by
//! default.
#![deny(unsafe_code)]

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// The serde format a channel's messages are encoded with.
///
/// [`Codec::Postcard`] is the default and always available;
/// `Codec::Bincode` (bincode 2.x, standard configuration) exists when the
/// crate's `bincode` feature is enabled. Enabling the feature adds the
/// variant and changes nothing else: a channel uses bincode only when it is
/// built with [`Builder::codec(Codec::Bincode)`](crate::Builder::codec).
/// (The enum is `#[non_exhaustive]`, so a `match` on it compiles whichever
/// features another crate in the build enables.)
///
/// Both ends of a channel must use the same codec: it is part of the
/// channel's fingerprint, and an endpoint opened with another codec than
/// the receiver's is refused with [`OpenErrorKind::TypeMismatch`](crate::OpenErrorKind::TypeMismatch).
///
/// ```
/// use shmpsc::Codec;
/// let (tx, rx) = shmpsc::channel::<String>("doc-codec")?;
/// assert_eq!(rx.codec(), Codec::Postcard);
/// assert_eq!(tx.codec(), Codec::default());
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// [postcard](https://docs.rs/postcard) 1.x: varint integers and
    /// lengths. The default.
    #[default]
    Postcard,
    /// [bincode](https://docs.rs/bincode) 2.x through its serde API, with
    /// its standard configuration (varint integers and lengths). Needs the
    /// `bincode` feature.
    #[cfg(feature = "bincode")]
    Bincode,
}

impl Codec {
    /// The codec's name: `"postcard"` or `"bincode"`.
    ///
    /// ```
    /// assert_eq!(shmpsc::Codec::Postcard.name(), "postcard");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            #[cfg(feature = "bincode")]
            Codec::Bincode => "bincode",
        }
    }

    /// The codec and format version, as hashed into the channel's
    /// fingerprint. `bincode-2-standard` is what shmpsc used before the codec
    /// became a setting, so bincode channels keep their fingerprint.
    pub(crate) const fn fingerprint_name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard-1",
            #[cfg(feature = "bincode")]
            Codec::Bincode => "bincode-2-standard",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Encodes `value` with `codec` at the start of `buf`, which it grows as
/// needed (and which the caller keeps for the next message); returns the
/// length of the encoding.
#[inline]
pub(crate) fn encode<T: Serialize>(
    codec: Codec,
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    match codec {
        Codec::Postcard => with_postcard::encode(value, buf),
        #[cfg(feature = "bincode")]
        Codec::Bincode => with_bincode::encode(value, buf),
    }
}

/// Decodes with `codec` one message that must span exactly `bytes`.
///
/// What decoding allocates is bounded by the bytes present, whatever a
/// length prefix in them claims, with either codec: a record is untrusted
/// input (any sender can send any bytes).
#[inline]
pub(crate) fn decode<'de, T: Deserialize<'de>>(
    codec: Codec,
    bytes: &'de [u8],
) -> Result<T, CodecError> {
    match codec {
        Codec::Postcard => with_postcard::decode(bytes),
        #[cfg(feature = "bincode")]
        Codec::Bincode => with_bincode::decode(bytes),
    }
}

fn trailing(codec: Codec, n: usize) -> CodecError {
    CodecError::new(
        codec,
        CodecErrorKind::TrailingBytes,
        format!("{n} trailing bytes after the message"),
    )
}

mod with_postcard {
    use super::{trailing, Codec, CodecError, CodecErrorKind as Kind};
    use serde::{Deserialize, Serialize};

    #[inline]
    pub(super) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<usize, CodecError> {
        buf.clear();
        let out = std::mem::take(buf);
        match postcard::to_extend(value, out) {
            Ok(v) => {
                *buf = v;
                Ok(buf.len())
            }
            Err(e) => Err(error(e)),
        }
    }

    /// postcard reads a string's or a byte buffer's claimed length from the
    /// slice (`deserialize_string` and `deserialize_byte_buf` forward to
    /// the borrowing `deserialize_str` and `deserialize_bytes`), which fails
    /// before anything is allocated if fewer bytes remain; sequences and
    /// maps go through serde's visitors, which pre-allocate at most 1 MiB
    /// (`size_hint::cautious`) and grow only as elements are decoded.
    #[inline]
    pub(super) fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((v, [])) => Ok(v),
            Ok((_, rest)) => Err(trailing(Codec::Postcard, rest.len())),
            Err(e) => Err(error(e)),
        }
    }

    #[cold]
    fn error(e: postcard::Error) -> CodecError {
        use postcard::Error as E;
        let (kind, message) = match e {
            E::DeserializeUnexpectedEnd => (Kind::Truncated, "the record ends inside the message"),
            E::DeserializeBadVarint => (Kind::Invalid, "malformed variable-length integer"),
            E::DeserializeBadBool => (Kind::Invalid, "a bool that is neither 0 nor 1"),
            E::DeserializeBadChar => (Kind::Invalid, "invalid char"),
            E::DeserializeBadUtf8 => (Kind::Invalid, "invalid UTF-8 in a string"),
            E::DeserializeBadOption => (Kind::Invalid, "an Option tag that is neither 0 nor 1"),
            E::DeserializeBadEnum => (Kind::Invalid, "an enum variant index out of range"),
            E::DeserializeBadEncoding => (Kind::Invalid, "the bytes are not a valid encoding"),
            E::DeserializeBadCrc => (Kind::Invalid, "bad CRC"),
            E::SerializeSeqLengthUnknown => (
                Kind::Unsupported,
                "a sequence or map of unknown length (postcard needs the length up front)",
            ),
            E::WontImplement | E::NotYetImplemented => (
                Kind::Unsupported,
                "the type uses a serde feature postcard does not support \
                 (e.g. deserialize_any: #[serde(flatten)], untagged enums)",
            ),
            E::SerdeSerCustom => (Kind::Custom, "the type's Serialize implementation failed"),
            E::SerdeDeCustom => (Kind::Custom, "the type's Deserialize implementation failed"),
            E::CollectStrError => (Kind::Custom, "collect_str failed while encoding"),
            _ => return CodecError::new(Codec::Postcard, Kind::Other, e.to_string()),
        };
        CodecError::new(Codec::Postcard, kind, message)
    }
}

#[cfg(feature = "bincode")]
mod with_bincode {
    use super::{present, trailing, Codec, CodecError, CodecErrorKind as Kind};
    use bincode::error::{DecodeError, EncodeError};
    use serde::{Deserialize, Serialize};

    const CONFIG: bincode::config::Configuration = bincode::config::standard();

    #[inline]
    pub(super) fn encode<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<usize, CodecError> {
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
                        .map_err(encode_error);
                }
                Err(e) => return Err(encode_error(e)),
            }
        }
    }

    #[inline]
    pub(super) fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
        // What decoding may allocate must be bounded by the bytes present,
        // whatever a length prefix claims. bincode 2.0.1's serde decoder
        // does not do that for owned strings and byte buffers:
        // `deserialize_string` and `deserialize_byte_buf` call
        // `Vec::<u8>::decode`, which checks the claimed length against the
        // configured limit only, zero-allocates it, and then reads. A limit
        // cannot fix that: it must allow well-formed messages (a `u128`
        // decoded from a one-byte varint counts 16 bytes against it), so
        // it lets a claim of 16 times the payload or more through to the
        // allocator (with the limit rounded up to a power of 16, a 130 MiB
        // message could claim 60 GiB and abort the receiver).
        //
        // So every owned string and byte buffer is decoded through
        // bincode's borrowing path instead (`present::Present`):
        // `<&[u8]>::borrow_decode` takes the claimed length from the slice,
        // which fails before anything is allocated if fewer bytes remain,
        // and the copy handed to the visitor is then exactly as long as
        // the bytes it copies. Everything else in bincode's serde decoder
        // allocates nothing from a claimed length: sequences and maps go
        // through serde's visitors, which pre-allocate at most 1 MiB
        // (`size_hint::cautious`) and grow only as elements are decoded,
        // each from at least one byte (a `Vec<u128>` holds at most 16
        // bytes per byte present).
        //
        // The limit stays, as a second line: 32 times the payload bounds
        // what a well-formed message can claim, with room to spare, and
        // is rounded up to a power of 16 to keep few copies of the decoder.
        macro_rules! limited {
            ($($bits:literal)*) => {{
                let claim = (bytes.len() as u64).saturating_mul(32);
                let seed = present::Seed(std::marker::PhantomData::<T>);
                $(
                    if claim <= 1u64 << $bits {
                        bincode::serde::seed_decode_from_slice(
                            seed,
                            bytes,
                            CONFIG.with_limit::<{ 1usize << $bits }>(),
                        )
                    } else
                )* {
                    bincode::serde::seed_decode_from_slice(
                        seed,
                        bytes,
                        CONFIG.with_limit::<{ 1usize << 40 }>(),
                    )
                }
            }};
        }
        match limited!(16 20 24 28 32 36) {
            Ok((v, used)) if used == bytes.len() => Ok(v),
            Ok((_, used)) => Err(trailing(Codec::Bincode, bytes.len() - used)),
            Err(e) => Err(decode_error(e)),
        }
    }

    #[cold]
    fn encode_error(e: EncodeError) -> CodecError {
        use bincode::serde::EncodeError as Serde;
        let kind = match &e {
            EncodeError::Serde(Serde::SequenceMustHaveLength) => Kind::Unsupported,
            EncodeError::OtherString(_) => Kind::Custom,
            _ => Kind::Other,
        };
        let message = match e {
            EncodeError::OtherString(s) => s,
            e => e.to_string(),
        };
        CodecError::new(Codec::Bincode, kind, message)
    }

    #[cold]
    fn decode_error(e: DecodeError) -> CodecError {
        use bincode::serde::DecodeError as Serde;
        let kind = match &e {
            DecodeError::UnexpectedEnd { .. } | DecodeError::LimitExceeded => Kind::Truncated,
            DecodeError::Serde(
                Serde::AnyNotSupported
                | Serde::IdentifierNotSupported
                | Serde::IgnoredAnyNotSupported
                | Serde::CannotBorrowOwnedData,
            ) => Kind::Unsupported,
            DecodeError::OtherString(_) => Kind::Custom,
            DecodeError::Io { .. } | DecodeError::Other(_) => Kind::Other,
            _ => Kind::Invalid,
        };
        let message = match e {
            DecodeError::OtherString(s) => s,
            e => e.to_string(),
        };
        CodecError::new(Codec::Bincode, kind, message)
    }
}

/// A `serde::Deserializer` adapter for bincode's borrowing decoder that
/// decodes owned strings and byte buffers from the borrowed slice (whose
/// length was checked against the input before anything was allocated)
/// and copies them; everything else passes through unchanged, with every
/// nested deserializer wrapped the same way.
#[cfg(feature = "bincode")]
mod present {
    use std::fmt;

    use serde::de::{
        DeserializeSeed, Deserializer, EnumAccess, Error, MapAccess, SeqAccess, VariantAccess,
        Visitor,
    };

    /// Wraps a deserializer.
    pub(super) struct Present<D>(D);

    /// Wraps a seed, so that what it deserializes is wrapped too.
    pub(super) struct Seed<S>(pub(super) S);

    /// Wraps a visitor, so that what it is handed is wrapped too.
    struct Wrap<V>(V);

    /// Turns a borrowed string into the owned one asked for.
    struct OwnStr<V>(V);

    /// Turns borrowed bytes into the owned buffer asked for.
    struct OwnBytes<V>(V);

    struct Seq<A>(A);
    struct Map<A>(A);
    struct Enum<A>(A);
    struct Variant<A>(A);

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Present(d))
        }
    }

    macro_rules! forward_deserialize {
        ($($method:ident)*) => {$(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Wrap(visitor))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Present<D> {
        type Error = D::Error;

        forward_deserialize!(
            deserialize_any deserialize_bool
            deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
            deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
            deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_bytes
            deserialize_option deserialize_unit deserialize_seq deserialize_map
            deserialize_identifier deserialize_ignored_any
        );

        #[inline]
        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_str(OwnStr(visitor))
        }

        #[inline]
        fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_bytes(OwnBytes(visitor))
        }

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_unit_struct(name, Wrap(visitor))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_newtype_struct(name, Wrap(visitor))
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple(len, Wrap(visitor))
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_struct(name, fields, Wrap(visitor))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_enum(name, variants, Wrap(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    macro_rules! forward_visit {
        ($($method:ident($ty:ty))*) => {$(
            #[inline]
            fn $method<E: Error>(self, v: $ty) -> Result<V::Value, E> {
                self.0.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        forward_visit!(
            visit_bool(bool)
            visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
            visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
            visit_f32(f32) visit_f64(f64) visit_char(char)
            visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
            visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
        );

        fn visit_none<E: Error>(self) -> Result<V::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: Error>(self) -> Result<V::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_some(Present(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_newtype_struct(Present(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.0.visit_seq(Seq(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Map(map))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.0.visit_enum(Enum(data))
        }
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for OwnStr<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<V::Value, E> {
            self.0.visit_string(v.to_owned())
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<V::Value, E> {
            self.0.visit_string(v.to_owned())
        }
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for OwnBytes<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
            self.0.visit_byte_buf(v.to_vec())
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<V::Value, E> {
            self.0.visit_byte_buf(v.to_vec())
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Seed(seed))
        }

        fn next_value_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.0.next_value_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
        type Error = A::Error;
        type Variant = Variant<A::Variant>;

        fn variant_seed<S: DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<(S::Value, Variant<A::Variant>), A::Error> {
            self.0
                .variant_seed(Seed(seed))
                .map(|(value, variant)| (value, Variant(variant)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }

        fn newtype_variant_seed<S: DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.0.newtype_variant_seed(Seed(seed))
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, Wrap(visitor))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.struct_variant(fields, Wrap(visitor))
        }
    }
}

// Not under loom, whose build holds only the protocol (and no allocation probe).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Event {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    /// Every codec this build has: each test runs for each.
    const CODECS: &[Codec] = &[
        Codec::Postcard,
        #[cfg(feature = "bincode")]
        Codec::Bincode,
    ];

    #[test]
    fn round_trip() {
        let ev = Event {
            id: 42,
            name: "hello".into(),
            data: vec![1, 2, 3],
        };
        for &c in CODECS {
            let mut buf = vec![9, 9, 9];
            let n = encode(c, &ev, &mut buf).unwrap();
            assert_eq!(decode::<Event>(c, &buf[..n]).unwrap(), ev, "{c}");
        }
    }

    #[test]
    fn every_serde_shape_round_trips() {
        // The bincode decoder wraps every nested deserializer: each shape
        // of the serde data model must come through unchanged.
        use serde_bytes::ByteBuf;
        use std::collections::BTreeMap;

        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Unit;
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Newtype(String);
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Tuple(u8, String, ByteBuf);
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        enum Kind {
            Unit,
            Newtype(String),
            Tuple(u128, String),
            Struct { name: String, bytes: ByteBuf },
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct All {
            unit: Unit,
            newtype: Newtype,
            tuple: Tuple,
            kinds: Vec<Kind>,
            maybe: Option<String>,
            nothing: Option<ByteBuf>,
            map: BTreeMap<String, Vec<String>>,
            wide: (i128, u128, char, f32, f64, bool, i8, u16),
            boxed: Box<str>,
        }
        let all = All {
            unit: Unit,
            newtype: Newtype("n".into()),
            tuple: Tuple(7, "t".into(), ByteBuf::from(vec![1, 2])),
            kinds: vec![
                Kind::Unit,
                Kind::Newtype("é".into()),
                Kind::Tuple(u128::MAX, String::new()),
                Kind::Struct {
                    name: "s".into(),
                    bytes: ByteBuf::from(vec![0; 300]),
                },
            ],
            maybe: Some("m".into()),
            nothing: None,
            map: [("k".to_owned(), vec!["v".to_owned(); 3])].into(),
            wide: (i128::MIN, 1, 'ß', 1.5, -2.25, true, -8, 65535),
            boxed: "b".into(),
        };
        for &c in CODECS {
            let mut buf = Vec::new();
            let n = encode(c, &all, &mut buf).unwrap();
            assert_eq!(decode::<All>(c, &buf[..n]).unwrap(), all, "{c}");
            // Invalid UTF-8 in a string is still an error.
            let mut bad = length_prefix(c, 2);
            bad.extend_from_slice(&[0xC3, 0x28]);
            let e = decode::<String>(c, &bad).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Invalid, "{c}: {e}");
        }
    }

    #[test]
    fn one_buffer_serves_growing_and_shrinking_messages() {
        // The buffer is kept between messages: it grows by doubling, goes
        // through a `Vec` past the slice limit, and leaves stale bytes after
        // a shorter encoding, which the returned length excludes.
        for &c in CODECS {
            let mut buf = Vec::new();
            for len in [0usize, 300, 5, 70_000, 3, (1 << 20) + 10, 1, 600_000, 0] {
                let ev = Event {
                    id: len as u64,
                    name: "n".repeat(len % 7),
                    data: vec![len as u8; len],
                };
                let n = encode(c, &ev, &mut buf).unwrap();
                assert!(buf.len() >= n);
                assert_eq!(
                    decode::<Event>(c, &buf[..n]).unwrap(),
                    ev,
                    "{c}: {len} bytes"
                );
            }
        }
    }

    #[test]
    fn large_and_dense_messages_decode() {
        // Decoded sizes well above the encoded size, at and around the
        // powers of two where the decoder's limit changes.
        for &c in CODECS {
            for n in [1usize, 1000, 2047, 2048, 2049, 65_536, 1 << 20] {
                let mut buf = Vec::new();
                let ones = vec![1u64; n];
                let len = encode(c, &ones, &mut buf).unwrap();
                assert_eq!(
                    decode::<Vec<u64>>(c, &buf[..len]).unwrap(),
                    ones,
                    "{c}: {n} u64s"
                );
                let wide = vec![1u128; n.min(1 << 16)];
                let len = encode(c, &wide, &mut buf).unwrap();
                let back = decode::<Vec<u128>>(c, &buf[..len]).unwrap();
                assert_eq!(back, wide, "{c}: {n} u128s");
            }
            for len in [65_526usize, 65_536, 65_537, 1 << 20] {
                let ev = Event {
                    id: 1,
                    name: "x".repeat(len % 100),
                    data: vec![7; len],
                };
                let mut buf = Vec::new();
                let n = encode(c, &ev, &mut buf).unwrap();
                assert_eq!(
                    decode::<Event>(c, &buf[..n]).unwrap(),
                    ev,
                    "{c}: {len} bytes"
                );
            }
        }
    }

    /// The codec's encoding of a length prefix.
    fn length_prefix(codec: Codec, len: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        match codec {
            Codec::Postcard => {
                let mut v = len;
                while v >= 0x80 {
                    buf.push((v as u8) | 0x80);
                    v >>= 7;
                }
                buf.push(v as u8);
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                buf.push(0xFD); // a u64 follows
                buf.extend_from_slice(&len.to_le_bytes());
            }
        }
        buf
    }

    #[test]
    fn hostile_length_prefix_is_an_error_not_an_abort() {
        // A string that claims 2^40 bytes (and one that claims more than
        // isize::MAX), with three bytes present.
        for &c in CODECS {
            for len in [1u64 << 40, u64::MAX] {
                let mut buf = length_prefix(c, len);
                buf.extend_from_slice(b"abc");
                assert!(decode::<String>(c, &buf).is_err());
                assert!(decode::<Vec<u8>>(c, &buf).is_err());
                assert!(decode::<Vec<u64>>(c, &buf).is_err());
            }
        }
    }

    #[test]
    fn hostile_length_in_a_large_message_allocates_only_what_is_present() {
        use crate::alloc_probe::largest_during;
        use serde_bytes::ByteBuf;

        // A 130 MiB message (a channel may allow messages that large) whose
        // leading length claims more than is present: 60 GiB (what the
        // receiver used to try to allocate, and abort on), 2 GiB (which it
        // allocated), and one byte too many. The body is 0xFF bytes, which
        // neither codec accepts as an element of any sequence below.
        const BODY: usize = 130 << 20;
        let body = vec![0xFFu8; BODY];
        for (c, claim) in CODECS
            .iter()
            .flat_map(|&c| [60u64 << 30, 2 << 30, BODY as u64 + 1].map(|claim| (c, claim)))
        {
            let mut buf = length_prefix(c, claim);
            buf.extend_from_slice(&body);
            // Whatever the type, decoding may allocate what the bytes
            // present can fill (twice that for a `Vec` that grows by
            // doubling as its elements are decoded: `Vec<u8>` decodes
            // every 0xFF as an element), plus serde's cautious 1 MiB
            // pre-allocation for sequences; never what the prefix claims.
            let bound = 2 * buf.len() + (1 << 20);
            macro_rules! check {
                ($($t:ty),*) => {$(
                    let (r, largest) = largest_during(|| decode::<$t>(c, &buf).map(drop));
                    assert!(r.is_err(), "{c}: {}: claim {claim} decoded", stringify!($t));
                    assert!(
                        largest <= bound,
                        "{c}: {}: claim {claim} in {} bytes made a {largest}-byte allocation",
                        stringify!($t),
                        buf.len()
                    );
                )*};
            }
            check!(
                String,
                ByteBuf,
                Vec<u8>,
                Vec<u128>,
                Vec<String>,
                Vec<ByteBuf>,
                Option<String>,
                (u8, String),
                std::collections::HashMap<String, u8>
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for &c in CODECS {
            assert!(decode::<Event>(c, &[0xFF; 3]).is_err());
            let e = decode::<Event>(c, &[]).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Truncated, "{c}: {e}");
            let mut buf = Vec::new();
            let n = encode(c, &7u8, &mut buf).unwrap();
            buf.truncate(n);
            buf.push(0);
            let e = decode::<u8>(c, &buf).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::TrailingBytes, "{c}: {e}");
            assert_eq!(e.codec(), c);
            assert!(e.to_string().contains("trailing"), "{e}");
            assert!(e.to_string().starts_with(c.name()), "{e}");
        }
    }

    #[test]
    fn unsupported_shapes_and_custom_errors_have_their_kinds() {
        use serde::ser::Error as _;
        use serde::Serializer;

        /// A sequence whose length is not known up front.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..3u8).filter(|_| true))
            }
        }
        /// A value whose `Serialize` fails.
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(S::Error::custom("no"))
            }
        }
        for &c in CODECS {
            let mut buf = Vec::new();
            let e = encode(c, &Unsized, &mut buf).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Unsupported, "{c}: {e}");
            let e = encode(c, &Refuses, &mut buf).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Custom, "{c}: {e}");
        }
    }

    #[test]
    fn codecs_have_distinct_fingerprint_names() {
        // The name of bincode's format is the one channels carried before
        // the codec became a setting: it must not change.
        assert_eq!(Codec::Postcard.fingerprint_name(), "postcard-1");
        assert_eq!(Codec::default(), Codec::Postcard);
        #[cfg(feature = "bincode")]
        assert_eq!(Codec::Bincode.fingerprint_name(), "bincode-2-standard");
    }
}

/// Why a message could not be encoded, or a record decoded: which codec,
/// what kind of failure, and the codec's own words.
///
/// Found in [`Rejection::Encode`](crate::Rejection::Encode) for a message
/// that could not be encoded, and in
/// [`InvalidMessage::codec_error`](crate::InvalidMessage::codec_error) for a
/// record that could not be decoded.
///
/// ```
/// use shmpsc::{CodecErrorKind, RecvError};
/// let (tx, rx) = shmpsc::channel::<String>("doc-codec-error")?;
/// tx.send_encoded_bytes(&[5, b'a']).unwrap(); // a length of 5, one byte present
/// let RecvError::Invalid(invalid) = rx.recv().unwrap_err() else { panic!() };
/// let e = invalid.codec_error().expect("a decoding error");
/// assert_eq!(e.kind(), CodecErrorKind::Truncated);
/// assert_eq!(e.codec(), shmpsc::Codec::Postcard);
/// assert!(e.to_string().starts_with("postcard: "));
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    codec: Codec,
    kind: CodecErrorKind,
    message: String,
}

/// What kind of failure a [`CodecError`] is.
///
/// ```
/// use shmpsc::CodecErrorKind;
/// let (tx, rx) = shmpsc::channel::<u8>("doc-codec-error-kind")?;
/// tx.send_encoded_bytes(&[1, 2]).unwrap(); // a `u8` is one byte
/// let invalid = rx.recv().unwrap_err();
/// let shmpsc::RecvError::Invalid(invalid) = invalid else { panic!() };
/// assert_eq!(invalid.codec_error().unwrap().kind(), CodecErrorKind::TrailingBytes);
/// # Ok::<(), shmpsc::OpenError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// The record ends before the message does (a length or an element
    /// claims more bytes than are present).
    Truncated,
    /// Bytes are left in the record after the message.
    TrailingBytes,
    /// The bytes are not an encoding of the message type: a malformed
    /// integer, an invalid `bool`, `char`, `Option` or enum tag, invalid
    /// UTF-8, a value out of range.
    Invalid,
    /// The message type uses a part of the serde data model that the codec
    /// does not support (a sequence of unknown length, `deserialize_any`,
    /// which `#[serde(flatten)]` and untagged enums need, ...).
    Unsupported,
    /// The type's `Serialize` or `Deserialize` implementation (its own, or
    /// serde's derived one: an unknown variant, a missing field, a wrong
    /// length) reported an error through serde's `Error::custom`.
    Custom,
    /// Anything else the codec reports.
    Other,
}

impl CodecError {
    pub(crate) fn new(
        codec: Codec,
        kind: CodecErrorKind,
        message: impl Into<String>,
    ) -> CodecError {
        CodecError {
            codec,
            kind,
            message: message.into(),
        }
    }

    /// The codec that failed.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<bool>("doc-codec-error-codec")?;
    /// tx.send_encoded_bytes(&[7]).unwrap(); // neither 0 nor 1
    /// let shmpsc::RecvError::Invalid(invalid) = rx.recv().unwrap_err() else { panic!() };
    /// assert_eq!(invalid.codec_error().unwrap().codec(), shmpsc::Codec::Postcard);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// What kind of failure this is.
    ///
    /// ```
    /// let (tx, rx) = shmpsc::channel::<bool>("doc-codec-error-kind-fn")?;
    /// tx.send_encoded_bytes(&[7]).unwrap(); // neither 0 nor 1
    /// let shmpsc::RecvError::Invalid(invalid) = rx.recv().unwrap_err() else { panic!() };
    /// assert_eq!(invalid.codec_error().unwrap().kind(), shmpsc::CodecErrorKind::Invalid);
    /// # Ok::<(), shmpsc::OpenError>(())
    /// ```
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.codec, self.message)
    }
}

impl std::error::Error for CodecError {}
