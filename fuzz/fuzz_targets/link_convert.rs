//! libFuzzer entry point for [`quorate_fuzz::link_convert`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::link_convert(data));
