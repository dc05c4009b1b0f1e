//! libFuzzer entry point of the `udp_datagram` target; the body is `voice_proto_fuzz::targets::udp_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::udp_datagram(data));
