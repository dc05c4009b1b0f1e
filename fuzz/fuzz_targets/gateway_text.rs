//! libFuzzer entry point of the `gateway_text` target; the body is `voice_proto_fuzz::targets::gateway_text`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::gateway_text(data));
