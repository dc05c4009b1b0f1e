//! libFuzzer entry point of the `session` target: the bytes are read as a
//! `voice_proto_fuzz::targets::SessionScript` (the same way the corpus replay reads them).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::session_bytes(data));
