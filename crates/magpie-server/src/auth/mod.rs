//! Authentication: password hashing, access tokens (JWT), refresh and personal tokens, the `AuthUser`
//! extractor every protected route takes, and sign-in throttling.

pub mod extract;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod throttle;
pub mod token;
pub mod totp;
pub mod webauthn;

pub use extract::{AuthUser, Via};
