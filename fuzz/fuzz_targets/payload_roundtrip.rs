//! libFuzzer entry point of the `payload_roundtrip` target; the body is `voice_proto_fuzz::targets::payload_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::payload_roundtrip(data));
