//! Envelope encryption: AES-256-GCM data keys per document, wrapped by a master key that comes
//! from the environment (`CARELENS_MASTER_KEY`, 32 bytes hex; a KMS would hand over the same).
//! Users' server-held signing seeds are wrapped under a key-encryption key derived per user
//! from the master key. Rotation re-wraps; stored ciphertext never changes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use carelens_domain::{DocumentEncryption, UserId, WrappedKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const MASTER_KEY_ENV: &str = "CARELENS_MASTER_KEY";
/// The key being rotated away from: still read, never written with.
pub const PREVIOUS_MASTER_KEY_ENV: &str = "CARELENS_MASTER_KEY_PREVIOUS";
pub const ALGORITHM: &str = "AES-256-GCM";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{var}: expected 64 hex characters (32 bytes); make one with `carelens records keygen`")]
    BadKey { var: &'static str },
    #[error("no master key with id {0} (set {PREVIOUS_MASTER_KEY_ENV} to the key being rotated away from)")]
    UnknownKey(String),
    #[error("decryption failed: the ciphertext, its nonce or its wrapped key was changed")]
    Tampered,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A 32-byte master key. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(b)
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(s.trim()).ok()?;
    bytes.try_into().ok()
}

impl MasterKey {
    pub fn new(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"carelens-master-key-id\0");
        h.update(key);
        let id = format!("mk-{}", &hex::encode(h.finalize())[..16]);
        Self { key, id }
    }

    pub fn from_hex(s: &str, var: &'static str) -> Result<Self, KeyError> {
        parse_hex32(s).map(Self::new).ok_or(KeyError::BadKey { var })
    }

    /// A fresh random key, as hex (for `carelens records keygen`).
    pub fn generate_hex() -> Result<String, KeyError> {
        Ok(hex::encode(random::<32>()?))
    }

    /// Its fingerprint, stored beside everything it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(key: &[u8; 32], secret: &[u8], aad: &[u8]) -> Result<(String, String), KeyError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::Tampered)?;
        let nonce = random::<12>()?;
        let ct =
            cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad }).map_err(|_| KeyError::Tampered)?;
        Ok((hex::encode(nonce), hex::encode(ct)))
    }

    fn open(key: &[u8; 32], nonce_hex: &str, ct_hex: &str, aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::Tampered)?;
        let nonce = hex::decode(nonce_hex).map_err(|_| KeyError::Tampered)?;
        if nonce.len() != 12 {
            return Err(KeyError::Tampered);
        }
        let ct = hex::decode(ct_hex).map_err(|_| KeyError::Tampered)?;
        cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad }).map_err(|_| KeyError::Tampered)
    }

    /// Wraps a 32-byte secret; `context` (e.g. the document id) is bound to it, so a wrapped
    /// key moved to another document does not open.
    pub fn wrap(&self, secret: &[u8; 32], context: &str) -> Result<WrappedKey, KeyError> {
        let (nonce_hex, ciphertext_hex) = Self::seal(&self.key, secret, context.as_bytes())?;
        Ok(WrappedKey { key_id: self.id.clone(), nonce_hex, ciphertext_hex })
    }

    fn unwrap_with(key: &[u8; 32], w: &WrappedKey, context: &str) -> Result<[u8; 32], KeyError> {
        let plain = Self::open(key, &w.nonce_hex, &w.ciphertext_hex, context.as_bytes())?;
        plain.try_into().map_err(|_| KeyError::Tampered)
    }

    /// The key-encryption key of one user: HMAC-SHA256(master, "kek" ‖ user id).
    fn kek(&self, user: &UserId) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"carelens-user-kek-v1\0");
        mac.update(user.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The current master key and the ones still accepted for reading during a rotation.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// From `CARELENS_MASTER_KEY` (and `CARELENS_MASTER_KEY_PREVIOUS`); `None` when unset.
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        let Ok(current) = std::env::var(MASTER_KEY_ENV) else { return Ok(None) };
        let current = MasterKey::from_hex(&current, MASTER_KEY_ENV)?;
        let previous = match std::env::var(PREVIOUS_MASTER_KEY_ENV) {
            Ok(p) => vec![MasterKey::from_hex(&p, PREVIOUS_MASTER_KEY_ENV)?],
            Err(_) => vec![],
        };
        Ok(Some(Self { current, previous }))
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    fn by_id(&self, id: &str) -> Result<&MasterKey, KeyError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| KeyError::UnknownKey(id.to_owned()))
    }

    pub fn unwrap(&self, w: &WrappedKey, context: &str) -> Result<[u8; 32], KeyError> {
        MasterKey::unwrap_with(&self.by_id(&w.key_id)?.key, w, context)
    }

    /// Re-wraps under the current key; `None` when it already is.
    pub fn rewrap(&self, w: &WrappedKey, context: &str) -> Result<Option<WrappedKey>, KeyError> {
        if w.key_id == self.current.id {
            return Ok(None);
        }
        let secret = self.unwrap(w, context)?;
        Ok(Some(self.current.wrap(&secret, context)?))
    }

    /// Wraps a user's signing seed under their key-encryption key.
    pub fn wrap_seed(&self, user: &UserId, seed: &[u8; 32]) -> Result<WrappedKey, KeyError> {
        let kek = self.current.kek(user);
        let (nonce_hex, ciphertext_hex) = MasterKey::seal(&kek, seed, b"carelens-signing-seed")?;
        Ok(WrappedKey { key_id: self.current.id.clone(), nonce_hex, ciphertext_hex })
    }

    pub fn unwrap_seed(&self, user: &UserId, w: &WrappedKey) -> Result<[u8; 32], KeyError> {
        let kek = self.by_id(&w.key_id)?.kek(user);
        let plain = MasterKey::open(&kek, &w.nonce_hex, &w.ciphertext_hex, b"carelens-signing-seed")?;
        plain.try_into().map_err(|_| KeyError::Tampered)
    }

    /// Re-wraps a user's seed under the current key's KEK; `None` when it already is.
    pub fn rewrap_seed(&self, user: &UserId, w: &WrappedKey) -> Result<Option<WrappedKey>, KeyError> {
        if w.key_id == self.current.id {
            return Ok(None);
        }
        let seed = self.unwrap_seed(user, w)?;
        Ok(Some(self.wrap_seed(user, &seed)?))
    }

    /// Encrypts a document's bytes under a fresh data key bound to `context` (its id).
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> Result<(Vec<u8>, DocumentEncryption), KeyError> {
        let data_key = random::<32>()?;
        let cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| KeyError::Tampered)?;
        let nonce = random::<12>()?;
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| KeyError::Tampered)?;
        let enc = DocumentEncryption {
            algorithm: ALGORITHM.into(),
            nonce_hex: hex::encode(nonce),
            data_key: self.current.wrap(&data_key, context)?,
        };
        Ok((ct, enc))
    }

    pub fn decrypt(&self, ciphertext: &[u8], enc: &DocumentEncryption, context: &str) -> Result<Vec<u8>, KeyError> {
        let data_key = self.unwrap(&enc.data_key, context)?;
        let cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| KeyError::Tampered)?;
        let nonce = hex::decode(&enc.nonce_hex).map_err(|_| KeyError::Tampered)?;
        if nonce.len() != 12 {
            return Err(KeyError::Tampered);
        }
        cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| KeyError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(k: u8) -> Keyring {
        Keyring::new(MasterKey::new([k; 32]), vec![])
    }

    #[test]
    fn documents_decrypt_and_any_change_is_caught() {
        let r = ring(1);
        let (ct, enc) = r.encrypt(b"%PDF-1.7 lab report", "doc-1").unwrap();
        assert_ne!(&ct[..], b"%PDF-1.7 lab report");
        assert_eq!(r.decrypt(&ct, &enc, "doc-1").unwrap(), b"%PDF-1.7 lab report");
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        assert!(matches!(r.decrypt(&flipped, &enc, "doc-1"), Err(KeyError::Tampered)));
        assert!(matches!(r.decrypt(&ct, &enc, "doc-2"), Err(KeyError::Tampered)), "bound to its document");
        assert!(matches!(ring(2).decrypt(&ct, &enc, "doc-1"), Err(KeyError::UnknownKey(_))));
    }

    #[test]
    fn rotation_rewraps_without_touching_the_ciphertext() {
        let old = ring(1);
        let (ct, mut enc) = old.encrypt(b"data", "d").unwrap();
        let rotating = Keyring::new(MasterKey::new([2; 32]), vec![MasterKey::new([1; 32])]);
        enc.data_key = rotating.rewrap(&enc.data_key, "d").unwrap().unwrap();
        assert_eq!(enc.data_key.key_id, rotating.current().id());
        assert!(rotating.rewrap(&enc.data_key, "d").unwrap().is_none(), "already current");
        assert_eq!(ring(2).decrypt(&ct, &enc, "d").unwrap(), b"data", "the new key alone opens it");
    }

    #[test]
    fn seeds_are_wrapped_per_user() {
        let r = ring(3);
        let (a, b) = (UserId::from_u128(1), UserId::from_u128(2));
        let w = r.wrap_seed(&a, &[9; 32]).unwrap();
        assert_eq!(r.unwrap_seed(&a, &w).unwrap(), [9; 32]);
        assert!(r.unwrap_seed(&b, &w).is_err(), "another user's KEK does not open it");
        assert!(!w.ciphertext_hex.contains(&hex::encode([9u8; 32])));
    }
}
