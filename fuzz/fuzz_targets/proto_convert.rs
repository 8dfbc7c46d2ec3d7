//! libFuzzer entry point for [`quorate_fuzz::proto_convert`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::proto_convert(data));
