//! libFuzzer entry point of the `gateway_binary` target; the body is `voice_proto_fuzz::targets::gateway_binary`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::gateway_binary(data));
