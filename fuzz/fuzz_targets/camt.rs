//! Any bytes given to the CAMT parser: an error or statements, never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_import::{Format, Options, parse};

fuzz_target!(|data: &[u8]| {
    let options = Options { format: Some(Format::Camt), ..Options::default() };
    if let Ok(parsed) = parse(data, &options, Some("x.xml")) {
        // Walk the result so nothing is left lazily unchecked.
        for (statement, row) in parsed.rows() {
            let _ = (statement.account.key(), row.amount.is_sign_negative(), row.description.len());
        }
    }
});
