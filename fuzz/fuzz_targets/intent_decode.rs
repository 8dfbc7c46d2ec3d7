//! libFuzzer entry point for [`quorate_fuzz::intent_decode`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::intent_decode(data));
