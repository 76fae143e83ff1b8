//! Chain files: any text must give a spec or errors with positions, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = nfvhost::chain::parse("fuzz.yaml", text) {
            assert!(!errors.0.is_empty());
            let _ = errors.to_string();
        }
    }
});
