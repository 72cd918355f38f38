//! Any bytes, format detected (including zip archives of CAMT statements), and the streaming CSV reader
//! the importer uses: an error or statements, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_import::csv::{self, CsvOptions, Item};
use magpie_import::{Options, detect, parse};

fuzz_target!(|data: &[u8]| {
    let _ = detect(data, None);
    let _ = parse(data, &Options::default(), Some("upload.zip"));
    let _ = parse(data, &Options::default(), None);
    let options = CsvOptions::default();
    let (text, _) = csv::decode(data, &options);
    if let Ok(layout) = csv::detect_layout(&text, &options) {
        for item in csv::Rows::new(&text, layout) {
            match item {
                Ok(Item::Row(row)) => {
                    let _ = row.amount.is_sign_negative();
                }
                Ok(Item::Skipped(_)) => {}
                Err(_) => break,
            }
        }
    }
});
