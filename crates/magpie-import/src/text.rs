//! Character encodings: BOMs, UTF-16 without a BOM, UTF-8, and Windows-1252 (which is what "Latin-1"
//! and `iso-8859-1` labels mean in practice, and what the WHATWG encoding standard maps them to).

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// Decode bytes to text. A BOM wins; then UTF-16 recognised by its zero bytes; then UTF-8 when the bytes
/// are valid UTF-8 (a file declaring 1252 but written in UTF-8 is common); then the declared encoding;
/// then Windows-1252. Returns the text (without BOM) and the encoding's name.
pub fn decode<'a>(bytes: &'a [u8], declared: Option<&str>) -> (Cow<'a, str>, &'static str) {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return (Cow::Owned(text.into_owned()), enc.name());
    }
    if let Some(enc) = utf16_without_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(bytes);
        return (Cow::Owned(text.into_owned()), enc.name());
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (Cow::Borrowed(s), UTF_8.name());
    }
    let enc = declared
        .and_then(|label| Encoding::for_label(label.trim().as_bytes()))
        .filter(|e| *e != UTF_8)
        .unwrap_or(WINDOWS_1252);
    let (text, _, _) = enc.decode(bytes);
    (Cow::Owned(text.into_owned()), enc.name())
}

/// Decode the first bytes of a file for sniffing: like [`decode`], but a UTF-8 sequence cut off by the
/// sample's end does not make the sample look like another encoding.
pub fn decode_sample(bytes: &[u8]) -> Cow<'_, str> {
    if let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
    {
        return String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
    }
    decode(bytes, None).0
}

/// UTF-16 text has a zero byte in most ASCII code units: at odd positions for little-endian.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(2000)];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let odd_zeros = sample.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    let even_zeros = sample.iter().step_by(2).filter(|b| **b == 0).count();
    if odd_zeros * 10 > pairs * 7 && even_zeros * 10 < pairs {
        Some(UTF_16LE)
    } else if even_zeros * 10 > pairs * 7 && odd_zeros * 10 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Normalize line endings (CRLF and bare CR) to LF.
pub fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_and_utf16_and_latin1_are_recognised() {
        assert_eq!(decode(b"\xEF\xBB\xBFDate,Amount", None), ("Date,Amount".into(), "UTF-8"));
        let utf16: Vec<u8> = "Datum;Betrag\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(decode(&utf16, None), ("Datum;Betrag\n".into(), "UTF-16LE"));
        let mut bom16 = vec![0xFF, 0xFE];
        bom16.extend(&utf16);
        assert_eq!(decode(&bom16, None).0, "Datum;Betrag\n");
        assert_eq!(decode(b"Caf\xe9 \x80", None), ("Café €".into(), "windows-1252"));
        assert_eq!(decode(b"Caf\xe9", Some("iso-8859-1")).1, "windows-1252");
        assert_eq!(decode("Café".as_bytes(), Some("1252")).0, "Café", "UTF-8 despite the declaration");
    }
}
