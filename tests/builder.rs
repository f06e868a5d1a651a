//! What a `Builder` refuses instead of silently changing (issue 15): a
//! name the command line would take for an option, a tick below 1 ms,
//! mode bits beyond 0o777; and its `Debug` shows the mode in octal.

use std::time::Duration;

use shmpsc::{Builder, OpenErrorKind};

fn unique(label: &str) -> String {
    format!("t-{}-builder-{label}", std::process::id())
}

#[test]
fn a_name_starting_with_a_dash_is_refused() {
    let name = format!("-{}", unique("dash"));
    let err = Builder::new(&name).receiver::<u8>().unwrap_err();
    assert!(
        matches!(err.kind(), OpenErrorKind::InvalidName { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("starts with `-`"), "{err}");
    assert!(!shmpsc::list().unwrap().contains(&name));
}

#[test]
fn a_tick_below_one_millisecond_is_refused() {
    for tick in [Duration::ZERO, Duration::from_micros(999)] {
        let err = Builder::new(&unique("tick"))
            .tick(tick)
            .receiver::<u8>()
            .unwrap_err();
        assert!(
            matches!(err.kind(), OpenErrorKind::InvalidConfig { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("below the minimum of 1ms"),
            "{err}"
        );
    }
    let name = unique("tick-sender");
    let _rx = Builder::new(&name).receiver::<u8>().unwrap();
    let err = Builder::new(&name)
        .tick(Duration::ZERO)
        .open_sender::<u8>()
        .unwrap_err();
    assert!(
        matches!(err.kind(), OpenErrorKind::InvalidConfig { .. }),
        "{err:?}"
    );
    // The minimum itself is fine.
    Builder::new(&name)
        .tick(Duration::from_millis(1))
        .open_sender::<u8>()
        .unwrap();
}

#[test]
fn mode_bits_beyond_0o777_are_refused() {
    // 600 in decimal is 0o1130: sticky, and not what was meant.
    let err = Builder::new(&unique("mode"))
        .mode(600)
        .receiver::<u8>()
        .unwrap_err();
    assert!(
        matches!(err.kind(), OpenErrorKind::InvalidConfig { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("0o1130"), "{err}");
    let _rx = Builder::new(&unique("mode-ok"))
        .mode(0o660)
        .receiver::<u8>()
        .unwrap();
}

#[test]
fn debug_shows_the_mode_in_octal() {
    let b = Builder::new("x").mode(0o660);
    let s = format!("{b:?}");
    assert!(s.contains("mode: 0o660"), "{s}");
}

/// Sized by messages, a ring holds that many messages of the sample's size
/// at once, with nobody receiving.
#[test]
fn capacity_for_holds_that_many_messages() {
    for n in [1u64, 10, 1000, 5000] {
        let sample = (u64::MAX, "a log line of moderate length".to_string());
        let name = unique(&format!("capacity-for-{n}"));
        let (tx, _rx) = Builder::new(&name)
            .capacity_for_sample(n, &sample)
            .create::<(u64, String)>()
            .unwrap();
        for i in 0..n {
            tx.try_send(sample.clone())
                .unwrap_or_else(|e| panic!("message {i} of {n} did not fit: {e}"));
        }
    }
    // A size no ring can hold is refused when the channel is created.
    let err = Builder::new(&unique("capacity-for-huge"))
        .capacity_for(u64::MAX, 1 << 20)
        .receiver::<u8>()
        .unwrap_err();
    assert!(
        matches!(err.kind(), OpenErrorKind::InvalidConfig { .. }),
        "{err:?}"
    );
}
