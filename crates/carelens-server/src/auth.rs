//! Passwords (argon2id) and bearer tokens (HMAC-SHA256 signed, short-lived).
//!
//! A token is `v1.<hex payload>.<hex signature>`; the payload is the JSON of [`Claims`]. The
//! server keeps no session table: any instance holding the key verifies a token, and a token
//! dies at `exp` (15 minutes by default). Changing the key (`CARELENS_TOKEN_KEY`) or
//! restarting a server with a generated key signs everyone out.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use carelens_domain::{ActorRole, HealthId, ProviderId, Role, User, UserId};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The shortest password the server hashes.
pub const MIN_PASSWORD: usize = 12;

/// argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password: at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("random source failed: {0}")]
    Random(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("token key: {0}")]
    Key(&'static str),
}

/// `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, AuthError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(buf)
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::ShortPassword);
    }
    let salt = SaltString::encode_b64(&random_bytes(16)?).map_err(|e| AuthError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string; a malformed hash matches nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A random password of `len` characters from an alphabet without look-alikes.
pub fn generate_password(len: usize) -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    // 256 is not a multiple of the alphabet size: reject bytes above the last full multiple.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len * 2)? {
            if (b as usize) < limit && out.len() < len {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<HealthId>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    pub fn for_user(user: &User, expires: DateTime<Utc>) -> Self {
        Self {
            sub: user.id,
            name: user.username.clone(),
            role: user.role,
            provider: user.provider.clone(),
            patient: user.patient.clone(),
            exp: expires.timestamp(),
        }
    }

    pub fn actor_role(&self) -> ActorRole {
        match self.role {
            Role::Admin => ActorRole::Admin,
            Role::Doctor => ActorRole::Doctor,
            Role::Patient => ActorRole::Patient,
            Role::Analyst => ActorRole::Analyst,
            Role::MlEngineer => ActorRole::MlEngineer,
        }
    }
}

/// Signs and checks tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// At least 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, AuthError> {
        if bytes.len() < 32 {
            return Err(AuthError::Key("needs at least 32 bytes (64 hex digits)"));
        }
        Ok(Self(bytes))
    }

    /// From hex, as `CARELENS_TOKEN_KEY` holds it.
    pub fn from_hex(hex_key: &str) -> Result<Self, AuthError> {
        Self::new(hex::decode(hex_key.trim()).map_err(|_| AuthError::Key("is not hexadecimal"))?)
    }

    pub fn random() -> Result<Self, AuthError> {
        Self::new(random_bytes(32)?)
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(b"carelens-token-v1.");
        mac.update(payload);
        mac
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let sig = self.mac(&payload).finalize().into_bytes();
        format!("v1.{}.{}", hex::encode(&payload), hex::encode(sig))
    }

    /// The claims of a token this key signed and that has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, ErrorCode> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ErrorCode::InvalidToken);
        };
        let payload = hex::decode(payload).map_err(|_| ErrorCode::InvalidToken)?;
        let sig = hex::decode(sig).map_err(|_| ErrorCode::InvalidToken)?;
        // Constant-time comparison.
        self.mac(&payload).verify_slice(&sig).map_err(|_| ErrorCode::InvalidToken)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| ErrorCode::InvalidToken)?;
        if claims.exp <= now.timestamp() {
            return Err(ErrorCode::TokenExpired);
        }
        Ok(claims)
    }
}

/// The signed-in caller of a request; extracting it is what makes an endpoint need a token.
#[derive(Debug, Clone)]
pub struct Session(pub Claims);

impl Session {
    /// Refuses (403, audited) unless the caller has one of `roles`.
    pub async fn require(&self, state: &AppState, roles: &[Role], resource: &str) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        crate::access::audit_denied(state, self, None, resource, "forbidden_role").await;
        Err(ApiError::new(
            ErrorCode::ForbiddenRole,
            format!("this endpoint is for {}; you are signed in as {}", wanted.join(" or "), self.0.role.as_str()),
        ))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::of(ErrorCode::MissingToken))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "expected `Authorization: Bearer <token>`"))?;
        let claims = state.tokens.verify(token.trim(), Utc::now()).map_err(ApiError::of)?;
        Ok(Session(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: UserId::from_u128(7),
            name: "dr.test".into(),
            role: Role::Doctor,
            provider: Some(ProviderId::from_number(3)),
            patient: None,
            exp,
        }
    }

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse battery "));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert_ne!(phc, hash_password("correct horse battery").unwrap(), "salted");
        assert!(matches!(hash_password("short"), Err(AuthError::ShortPassword)));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password(20).unwrap();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password(20).unwrap());
    }

    #[test]
    fn tokens_verify_only_unaltered_unexpired_and_with_their_key() {
        let key = TokenKey::random().unwrap();
        let now = Utc::now();
        let c = claims(now.timestamp() + 60);
        let t = key.sign(&c);
        assert_eq!(key.verify(&t, now).unwrap(), c);
        assert_eq!(key.verify(&t, now + chrono::Duration::seconds(61)), Err(ErrorCode::TokenExpired));
        assert_eq!(TokenKey::random().unwrap().verify(&t, now), Err(ErrorCode::InvalidToken));
        // A doctor who edits their role in the payload breaks the signature.
        let forged = key.sign(&Claims { role: Role::Admin, ..c.clone() });
        let (_, forged_sig) = forged.rsplit_once('.').unwrap();
        let (head, _) = t.rsplit_once('.').unwrap();
        let payload = hex::encode(serde_json::to_vec(&Claims { role: Role::Admin, ..c }).unwrap());
        assert_eq!(key.verify(&format!("v1.{payload}.{}", &t[head.len() + 1..]), now), Err(ErrorCode::InvalidToken));
        assert_ne!(forged_sig, &t[head.len() + 1..]);
        for bad in ["", "v1", "v1.zz.zz", "v2.00.00", "v1.00.00.00"] {
            assert_eq!(key.verify(bad, now), Err(ErrorCode::InvalidToken), "{bad:?}");
        }
        assert!(TokenKey::from_hex("abcd").is_err());
        assert!(TokenKey::from_hex(&"ab".repeat(32)).is_ok());
    }
}
