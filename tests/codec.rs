//! The codec a channel uses: chosen with `Builder::codec` (postcard by
//! default), reported by both ends, part of the fingerprint (an endpoint
//! with another codec is refused at open), and its errors typed.

use std::error::Error as _;

use shmpsc::{Builder, Codec, CodecError, CodecErrorKind, RecvError, Rejection, SendError};

/// A channel name of this process.
fn unique_name(label: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t-{}-{n}-codec-{label}", std::process::id())
}

#[test]
fn postcard_is_the_default_on_every_endpoint() {
    let name = unique_name("default");
    let (tx, rx) = shmpsc::channel::<String>(&name).unwrap();
    assert_eq!(Codec::default(), Codec::Postcard);
    assert_eq!(rx.codec(), Codec::Postcard);
    assert_eq!(tx.codec(), Codec::Postcard);
    assert_eq!(tx.clone().codec(), Codec::Postcard);
    let opened = shmpsc::Sender::<String>::open(&name).unwrap();
    assert_eq!(opened.codec(), Codec::Postcard);
    let explicit = Builder::new(&name)
        .codec(Codec::Postcard)
        .open_sender::<String>()
        .unwrap();
    explicit.send("explicit".into()).unwrap();
    opened.send("opened".into()).unwrap();
    assert_eq!(rx.recv().unwrap(), "explicit");
    assert_eq!(rx.recv().unwrap(), "opened");
    assert_eq!(Codec::Postcard.to_string(), "postcard");
}

#[test]
fn a_record_that_cannot_be_decoded_has_a_codec_error_as_its_source() {
    let name = unique_name("invalid");
    let (tx, rx) = shmpsc::channel::<String>(&name).unwrap();
    tx.send_encoded_bytes(&[3, b'a']).unwrap(); // claims 3 bytes, holds 1
    let Err(RecvError::Invalid(invalid)) = rx.recv() else {
        panic!("expected Invalid")
    };
    let e = invalid.codec_error().expect("a decoding error");
    assert_eq!(e.kind(), CodecErrorKind::Truncated);
    assert_eq!(e.codec(), Codec::Postcard);
    let source = invalid.source().expect("a source");
    assert_eq!(source.downcast_ref::<CodecError>(), Some(e));
    let text = invalid.to_string();
    for part in [
        "position 0",
        "could not be decoded as `alloc::string::String`",
        "postcard: ",
    ] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
}

#[test]
fn a_message_the_codec_cannot_encode_is_rejected_with_its_kind() {
    /// A map whose length postcard cannot know up front.
    struct Unsized;
    impl serde::Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map((0..2u8).filter(|_| true).map(|k| (k, k)))
        }
    }
    impl<'de> serde::Deserialize<'de> for Unsized {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            <()>::deserialize(d).map(|()| Unsized)
        }
    }
    let name = unique_name("unsized");
    let (tx, _rx) = shmpsc::channel::<Unsized>(&name).unwrap();
    let Err(SendError::Rejected(_, Rejection::Encode(e))) = tx.send(Unsized) else {
        panic!("expected Rejected(Encode)")
    };
    assert_eq!(e.kind(), CodecErrorKind::Unsupported);
    assert!(e.to_string().contains("unknown length"), "{e}");
}

#[cfg(feature = "bincode")]
mod bincode {
    use super::*;
    use shmpsc::OpenErrorKind;

    #[test]
    fn a_bincode_channel_refuses_postcard_endpoints_at_open() {
        let name = unique_name("bincode");
        let rx = Builder::new(&name)
            .codec(Codec::Bincode)
            .receiver::<String>()
            .unwrap();
        assert_eq!(rx.codec(), Codec::Bincode);
        let e = shmpsc::Sender::<String>::open(&name).unwrap_err();
        assert!(
            matches!(e.kind(), OpenErrorKind::TypeMismatch { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("codec"), "{e}");

        let tx = Builder::new(&name)
            .codec(Codec::Bincode)
            .open_sender::<String>()
            .unwrap();
        assert_eq!(tx.codec(), Codec::Bincode);
        let made = rx.sender().unwrap();
        assert_eq!(made.codec(), Codec::Bincode);
        tx.send("one".into()).unwrap();
        made.send("two".into()).unwrap();
        assert_eq!(rx.recv().unwrap(), "one");
        assert_eq!(rx.recv().unwrap(), "two");
    }

    #[test]
    fn a_postcard_channel_refuses_bincode_endpoints_at_open() {
        let name = unique_name("postcard");
        let (tx, rx) = shmpsc::channel::<u64>(&name).unwrap();
        let e = Builder::new(&name)
            .codec(Codec::Bincode)
            .open_sender::<u64>()
            .unwrap_err();
        assert!(
            matches!(e.kind(), OpenErrorKind::TypeMismatch { .. }),
            "{e:?}"
        );
        // A receiver of the same name with the other codec is refused too.
        let e = Builder::new(&name)
            .codec(Codec::Bincode)
            .receiver::<u64>()
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                OpenErrorKind::TypeMismatch { .. } | OpenErrorKind::AlreadyExists
            ),
            "{e:?}"
        );
        tx.send(1).unwrap();
        assert_eq!(rx.recv(), Ok(1));
    }

    #[test]
    fn bincode_errors_name_bincode() {
        let name = unique_name("bincode-invalid");
        let (tx, rx) = Builder::new(&name)
            .codec(Codec::Bincode)
            .create::<bool>()
            .unwrap();
        tx.send_encoded_bytes(&[7]).unwrap();
        let Err(RecvError::Invalid(invalid)) = rx.recv() else {
            panic!("expected Invalid")
        };
        let e = invalid.codec_error().unwrap();
        assert_eq!(
            (e.codec(), e.kind()),
            (Codec::Bincode, CodecErrorKind::Invalid)
        );
        assert!(e.to_string().starts_with("bincode: "), "{e}");
        tx.send(true).unwrap();
        assert_eq!(rx.recv(), Ok(true));
    }
}
