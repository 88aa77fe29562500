//! UAA-shaped access tokens: HS256 JWTs signed with the double's secret. The real UAA signs with
//! RS256; clients never verify signatures (the cf CLI only decodes the payload for `exp` and the
//! user name), so HS256 keeps the double free of key material while CC-side checks stay real.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::Error;

/// The audience CC requires (`resource_id` in CC's config).
pub const CC_AUDIENCE: &str = "cloud_controller";

/// The claims UAA puts in a user or client token (the ones CC and the cf CLI read).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Token id.
    pub jti: String,
    /// Subject: the user id, or the client id for client tokens.
    pub sub: String,
    /// Granted scopes, e.g. `cloud_controller.read`.
    pub scope: Vec<String>,
    /// OAuth client that asked for the token.
    pub client_id: String,
    /// Same as `client_id` (UAA sends both).
    pub cid: String,
    /// Grant that produced the token.
    pub grant_type: String,
    /// User guid; absent in client-credentials tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// User name; absent in client-credentials tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Identity provider of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Issued at (epoch seconds).
    pub iat: i64,
    /// Expires at (epoch seconds).
    pub exp: i64,
    /// Issuer: `<uaa url>/oauth/token`.
    pub iss: String,
    /// Identity zone.
    pub zid: String,
    /// Audiences.
    pub aud: Vec<String>,
}

impl Claims {
    /// The actor CC acts for: `user_id`, else `client_id`.
    pub fn actor(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.client_id)
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// Signs and checks tokens with one shared secret.
#[derive(Debug, Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

/// Why a token was refused (all map to CC's 401 `CF-InvalidAuthToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts, or the payload is not the claims JSON.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// `exp` is in the past.
    Expired,
    /// Wrong issuer or audience.
    WrongIssuerOrAudience,
}

impl Signer {
    /// A signer with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Signer {
        Signer { secret: secret.into() }
    }

    fn mac(&self, signing_input: &str) -> Result<Vec<u8>, Error> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|e| Error::Token(format!("hmac key: {e}")))?;
        mac.update(signing_input.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Encodes and signs `claims` as a compact JWT.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"double-key","typ":"JWT"}"#);
        let payload = serde_json::to_vec(claims).map_err(|e| Error::Token(e.to_string()))?;
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&input)?);
        Ok(format!("{input}.{signature}"))
    }

    /// Checks the signature, `exp` against `now`, and `iss`/`aud`; returns the claims.
    pub fn verify(&self, token: &str, issuer: &str, now: i64) -> Result<Claims, Rejection> {
        let claims = decode_unverified(token).ok_or(Rejection::Malformed)?;
        let (input, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Rejection::Malformed)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|_| Rejection::BadSignature)?;
        mac.update(input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| Rejection::BadSignature)?;
        if claims.exp <= now {
            return Err(Rejection::Expired);
        }
        if claims.iss != issuer || !claims.aud.iter().any(|a| a == CC_AUDIENCE) {
            return Err(Rejection::WrongIssuerOrAudience);
        }
        Ok(claims)
    }
}

/// The claims of `token` without any check (what the cf CLI does to read `exp`).
pub fn decode_unverified(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
