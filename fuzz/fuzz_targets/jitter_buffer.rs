//! libFuzzer entry point of the `jitter_buffer` target: the bytes are read as a
//! `voice_proto_fuzz::jitter_buffer::BufferScript` (the same way the corpus replay reads them).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto_fuzz::jitter_buffer::jitter_buffer(data));
