//! libFuzzer entry point of the `dave_binary` target: the bytes are read as a
//! `voice_proto_fuzz::targets::DaveScript` (the same way the corpus replay reads them).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::targets::dave_binary(data));
