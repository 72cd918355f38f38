//! Deep and wide markup for the OFX and CAMT readers: each input byte is an instruction (open a tag,
//! open a run of tags, close one, text, a self-closing tag), so short inputs reach nesting depths and
//! element counts far past the limits. The readers must refuse them cleanly: no stack overflow, no
//! quadratic time, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn markup(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 64);
    for (i, b) in data.iter().enumerate() {
        let name = format!("t{}", b % 23);
        match b >> 5 {
            0 | 1 => s.push_str(&format!("<{name}>")),
            2 => {
                // A run of distinct open tags: depth grows by up to 1,024 per byte.
                for d in 0..(usize::from(*b) * 4 + 1) {
                    s.push_str(&format!("<n{i}x{d}>"));
                }
            }
            3 => s.push_str(&format!("</{name}>")),
            4 => s.push_str(&format!("<{name}/>")),
            5 => s.push_str(&format!("<{name}>1.00")),
            6 => s.push_str("<![CDATA[<x>]]>&amp;"),
            _ => s.push_str(&"<a/>".repeat(usize::from(*b) * 64)),
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let body = markup(data);
    let ofx = format!("OFXHEADER:100\nDATA:OFXSGML\n\n<OFX>{body}</OFX>");
    let _ = magpie_import::ofx::parse(ofx.as_bytes());
    let camt = format!("<Document><BkToCstmrStmt><Stmt>{body}</Stmt></BkToCstmrStmt></Document>");
    let _ = magpie_import::camt::parse(camt.as_bytes());
});
