//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 6 digits, 30-second
//! steps, the parameters every authenticator app uses. A code is accepted for the current step and
//! one step either side (clock drift), and only for a step later than the last one accepted, so each
//! code works once. Also the enrolment QR code and the one-time recovery codes.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Recovery codes handed out at once.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what `otpauth://` URIs and authenticator apps use).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decode base32 (case and spaces ignored); none when a character is not base32.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// A new random 160-bit seed (RFC 4226's recommended length), base32.
pub fn generate_secret() -> String {
    base32_encode(&crate::auth::token::random_bytes::<20>())
}

/// The step a Unix time falls in.
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// The HOTP code of `secret` at counter `step`.
pub fn code_at(secret: &[u8], step: i64) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary =
        u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The step `code` is valid for at `unix` time (current step or one either side), when that step is
/// later than `last_step`. Comparison takes the same time whatever the code.
pub fn verify(secret: &[u8], code: &str, unix: i64, last_step: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = code_at(secret, step);
        let same = expected.bytes().zip(code.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn otpauth_uri(secret: &str, account: &str, issuer: &str) -> String {
    let enc = crate::web::format::urlencode;
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The QR code of `text` as an SVG document (rendered here: no image leaves the server, no script).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
        // Only a text too long for any QR version fails; an otpauth URI is far shorter.
        Err(_) => String::new(),
    }
}

/// New recovery codes: 80 random bits each, as `XXXX-XXXX-XXXX-XXXX` in base32.
pub fn generate_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = base32_encode(&crate::auth::token::random_bytes::<10>());
            raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// How a recovery code is stored: SHA-256 of the user and the code as typed without dashes, spaces
/// or case, so `abcd efgh…` matches `ABCD-EFGH-…`.
pub fn recovery_code_hash(user: magpie_domain::UserId, code: &str) -> String {
    let normal: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    crate::auth::token::hash(&format!("recovery:{user}:{normal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed.
    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        // The RFC lists 8 digits; its last 6 are the 6-digit code.
        for (time, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SEED, step_at(time)), code8[2..], "t={time}");
        }
    }

    #[test]
    fn a_code_is_valid_one_step_either_side_and_only_after_the_last_used_step() {
        let t = 1_234_567_890;
        let now = step_at(t);
        let code = code_at(RFC_SEED, now);
        assert_eq!(verify(RFC_SEED, &code, t, 0), Some(now));
        assert_eq!(verify(RFC_SEED, &code, t + 30, 0), Some(now), "one step late");
        assert_eq!(verify(RFC_SEED, &code, t - 30, 0), Some(now), "one step early");
        assert_eq!(verify(RFC_SEED, &code, t + 60, 0), None, "two steps late");
        assert_eq!(verify(RFC_SEED, &code, t, now), None, "already used");
        assert_eq!(verify(RFC_SEED, &format!("{} ", &code[..3]), t, 0), None);
        assert_eq!(verify(RFC_SEED, "abcdef", t, 0), None);
    }

    #[test]
    fn base32_round_trips() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 32);
        let bytes = base32_decode(&secret).unwrap();
        assert_eq!(bytes.len(), 20);
        assert_eq!(base32_encode(&bytes), secret);
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_the_same_however_typed() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), RECOVERY_CODES);
        assert!(codes[0].len() == 19 && codes[0].matches('-').count() == 3, "{}", codes[0]);
        let user = magpie_domain::UserId::new();
        let typed = codes[0].to_lowercase().replace('-', " ");
        assert_eq!(recovery_code_hash(user, &typed), recovery_code_hash(user, &codes[0]));
        assert_ne!(recovery_code_hash(magpie_domain::UserId::new(), &codes[0]), recovery_code_hash(user, &codes[0]));
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let svg = qr_svg(&otpauth_uri("MZXW6YTBOI", "ada@example.com", "Magpie"));
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{}", &svg[..100.min(svg.len())]);
        assert!(!svg.contains("<script"));
    }
}
