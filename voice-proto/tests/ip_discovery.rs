//! IP discovery (docs/protocol.md §6, C13, C14): round trips and every strict-parse rejection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use voice_proto::discovery::{
    discovery_request, discovery_response, parse_discovery_request, parse_discovery_response,
    DiscoveredAddress, DiscoveryError, DISCOVERY_PACKET_LEN,
};

/// A response with `address` written verbatim into the address field.
fn raw_response(address: &[u8]) -> [u8; DISCOVERY_PACKET_LEN] {
    let mut packet = discovery_response(7, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50_000);
    packet[8..72].fill(0);
    packet[8..8 + address.len()].copy_from_slice(address);
    packet
}

fn bad_address(text: &str) -> DiscoveryError {
    DiscoveryError::BadAddress {
        text: text.to_owned(),
    }
}

#[test]
fn request_layout_and_round_trip() {
    let request = discovery_request(0xDEAD_BEEF);
    assert_eq!(&request[..8], &[0, 1, 0, 70, 0xDE, 0xAD, 0xBE, 0xEF]);
    assert!(request[8..].iter().all(|&byte| byte == 0));
    assert_eq!(parse_discovery_request(&request), Ok(0xDEAD_BEEF));
    // SSRCs above 2^31 (stage channels) survive.
    assert_eq!(
        parse_discovery_request(&discovery_request(u32::MAX)),
        Ok(u32::MAX)
    );
}

#[test]
fn response_layout_matches_the_table() {
    let response = discovery_response(12345, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 0xC350);
    assert_eq!(&response[..8], &[0, 2, 0, 70, 0, 0, 0x30, 0x39]);
    assert_eq!(&response[8..20], b"203.0.113.7\0");
    assert!(response[20..72].iter().all(|&byte| byte == 0));
    assert_eq!(&response[72..], &[0xC3, 0x50]);
}

#[test]
fn response_round_trips_v4_and_v6() {
    let cases = [
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6("2001:db8::8a2e:370:7334".parse().unwrap()),
        IpAddr::V6("::ffff:255.255.255.255".parse().unwrap()),
        IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        )),
    ];
    for ip in cases {
        let packet = discovery_response(42, ip, 65535);
        assert_eq!(
            parse_discovery_response(&packet),
            Ok(DiscoveredAddress {
                ssrc: 42,
                ip,
                port: 65535
            }),
            "{ip}"
        );
    }
}

#[test]
fn response_parser_takes_text_up_to_the_first_nul() {
    let packet = raw_response(b"10.1.2.3");
    let parsed = parse_discovery_response(&packet).unwrap();
    assert_eq!(parsed.ip, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    assert_eq!(parsed.port, 50_000);
    assert_eq!(parsed.ssrc, 7);
}

#[test]
fn rejects_wrong_lengths() {
    let good = discovery_response(1, IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
    for len in [0, 1, 8, 72, 73] {
        assert_eq!(
            parse_discovery_response(&good[..len]),
            Err(DiscoveryError::WrongLength { actual: len })
        );
        assert_eq!(
            parse_discovery_request(&discovery_request(1)[..len]),
            Err(DiscoveryError::WrongLength { actual: len })
        );
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(
        parse_discovery_response(&long),
        Err(DiscoveryError::WrongLength { actual: 75 })
    );
}

#[test]
fn rejects_wrong_types() {
    // A request fed to the response parser (our own packet echoed back) and the reverse.
    assert_eq!(
        parse_discovery_response(&discovery_request(1)),
        Err(DiscoveryError::WrongType {
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        parse_discovery_request(&discovery_response(1, IpAddr::V4(Ipv4Addr::LOCALHOST), 1)),
        Err(DiscoveryError::WrongType {
            expected: 1,
            actual: 2
        })
    );
    let mut packet = raw_response(b"1.2.3.4");
    packet[0] = 0x01; // 0x0102: high byte is part of the type too
    assert_eq!(
        parse_discovery_response(&packet),
        Err(DiscoveryError::WrongType {
            expected: 2,
            actual: 0x0102
        })
    );
}

#[test]
fn rejects_wrong_length_fields() {
    for (hi, lo, value) in [(0, 74, 74u16), (0, 0, 0), (1, 70, 0x0146), (0, 69, 69)] {
        let mut response = raw_response(b"1.2.3.4");
        response[2] = hi;
        response[3] = lo;
        assert_eq!(
            parse_discovery_response(&response),
            Err(DiscoveryError::WrongLengthField { actual: value })
        );
        let mut request = discovery_request(1);
        request[2] = hi;
        request[3] = lo;
        assert_eq!(
            parse_discovery_request(&request),
            Err(DiscoveryError::WrongLengthField { actual: value })
        );
    }
}

#[test]
fn rejects_addresses_that_are_not_ips() {
    let cases: [(&[u8], &str); 10] = [
        (b"", ""),
        (b"localhost", "localhost"),
        (b"1.2.3", "1.2.3"),
        (b"1.2.3.256", "1.2.3.256"),
        (b" 1.2.3.4", " 1.2.3.4"),
        (b"1.2.3.4 ", "1.2.3.4 "),
        (b"1.2.3.4:50000", "1.2.3.4:50000"),
        (b"[::1]", "[::1]"),
        (b"fe80::1%eth0", "fe80::1%eth0"),
        (b"01.2.3.4", "01.2.3.4"),
    ];
    for (address, text) in cases {
        assert_eq!(
            parse_discovery_response(&raw_response(address)),
            Err(bad_address(text)),
            "{text:?}"
        );
    }
}

#[test]
fn rejects_non_ascii_addresses_with_lossy_text() {
    // "1.2.3.4" with a non-ASCII byte inside, and UTF-8 that is not ASCII.
    assert_eq!(
        parse_discovery_response(&raw_response(b"1.2.\xFF3.4")),
        Err(bad_address("1.2.\u{FFFD}3.4"))
    );
    assert_eq!(
        parse_discovery_response(&raw_response("１.2.3.4".as_bytes())),
        Err(bad_address("１.2.3.4"))
    );
}

#[test]
fn rejects_an_address_field_without_nul() {
    // 64 non-NUL bytes: no terminator. The error text is capped at 64 characters.
    let packet = raw_response(&[b'9'; 64]);
    assert_eq!(
        parse_discovery_response(&packet),
        Err(bad_address(&"9".repeat(64)))
    );
    let packet = raw_response(&[0xFF; 64]);
    match parse_discovery_response(&packet) {
        Err(DiscoveryError::BadAddress { text }) => assert_eq!(text.chars().count(), 64),
        other => panic!("expected BadAddress, got {other:?}"),
    }
}

#[test]
fn rejects_anything_but_nul_after_the_terminator() {
    let mut packet = raw_response(b"1.2.3.4");
    packet[16] = 0; // the terminator
    packet[20] = b'x';
    assert_eq!(
        parse_discovery_response(&packet),
        Err(DiscoveryError::GarbageAfterAddress { offset: 20 })
    );
    let mut packet = raw_response(b"1.2.3.4");
    packet[71] = 1; // last byte of the field
    assert_eq!(
        parse_discovery_response(&packet),
        Err(DiscoveryError::GarbageAfterAddress { offset: 71 })
    );
    // A second address after the NUL is garbage too.
    let packet = raw_response(b"1.2.3.4\x005.6.7.8");
    assert_eq!(
        parse_discovery_response(&packet),
        Err(DiscoveryError::GarbageAfterAddress { offset: 16 })
    );
}

#[test]
fn errors_say_what_was_expected_and_what_arrived() {
    let message = parse_discovery_response(&[0; 10]).unwrap_err().to_string();
    assert!(
        message.contains("74") && message.contains("10"),
        "{message}"
    );
    let message = parse_discovery_response(&discovery_request(1))
        .unwrap_err()
        .to_string();
    assert!(message.contains('2') && message.contains('1'), "{message}");
    let message = parse_discovery_response(&raw_response(b"nope"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("nope"), "{message}");
}

proptest! {
    #[test]
    fn any_v4_round_trips(octets: [u8; 4], ssrc: u32, port: u16) {
        let ip = IpAddr::V4(Ipv4Addr::from(octets));
        let packet = discovery_response(ssrc, ip, port);
        prop_assert_eq!(parse_discovery_response(&packet), Ok(DiscoveredAddress { ssrc, ip, port }));
        prop_assert_eq!(parse_discovery_request(&discovery_request(ssrc)), Ok(ssrc));
    }

    #[test]
    fn any_v6_round_trips(segments: [u16; 8], ssrc: u32, port: u16) {
        let ip = IpAddr::V6(Ipv6Addr::from(segments));
        let packet = discovery_response(ssrc, ip, port);
        prop_assert_eq!(parse_discovery_response(&packet), Ok(DiscoveredAddress { ssrc, ip, port }));
    }

    #[test]
    fn request_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_discovery_request(&bytes);
    }
}
