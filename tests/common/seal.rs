//! The viewer's side of sealed mode for the Rust tests, written from
//! docs/protocol.md §8 apart from the daemon's code (and checked against
//! the same vectors), so the two cannot share a mistake.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// A paired viewer's key, from its key string `<kid>.<secret>`.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    to_device: LessSafeKey,
    to_viewer: LessSafeKey,
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn aead(secret: &[u8], info: &[u8]) -> LessSafeKey {
    let mut key = [0; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"peercam-v1")
        .extract(secret)
        .expand(&[info], Len32)
        .unwrap()
        .fill(&mut key)
        .unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap())
}

impl TestKey {
    /// The key of a key string; panics when the kid is not the secret's.
    pub(crate) fn parse(key: &str) -> TestKey {
        let (kid, secret) = key.split_once('.').unwrap();
        let secret = URL_SAFE_NO_PAD.decode(secret).unwrap();
        let hash = digest::digest(&digest::SHA256, &secret);
        let expected: String = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(kid, expected, "the kid names the secret");
        TestKey {
            kid: kid.to_owned(),
            to_device: aead(&secret, b"viewer-to-device"),
            to_viewer: aead(&secret, b"device-to-viewer"),
        }
    }

    /// A fresh random key nobody paired, as a key string.
    pub(crate) fn stranger() -> String {
        let secret: [u8; 32] = rand::random();
        let hash = digest::digest(&digest::SHA256, &secret);
        let kid: String = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{kid}.{}", URL_SAFE_NO_PAD.encode(secret))
    }

    /// The sealed payload of `body` on `topic` (viewer to device).
    pub(crate) fn seal(&self, topic: &str, body: &Value) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = body.to_string().into_bytes();
        let tag = self
            .to_device
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(topic.as_bytes()),
                &mut sealed,
            )
            .unwrap();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(tag.as_ref());
        serde_json::json!({"v": 1, "kid": self.kid, "seal": URL_SAFE_NO_PAD.encode(bytes)})
            .to_string()
            .into_bytes()
    }

    /// The body of a sealed payload from the device on `topic`, if it opens.
    pub(crate) fn open(&self, topic: &str, payload: &Value) -> Option<Value> {
        if payload["kid"] != self.kid.as_str() {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(payload["seal"].as_str()?).ok()?;
        if bytes.len() < NONCE_LEN + 16 {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).ok()?;
        let plain = self
            .to_viewer
            .open_in_place(nonce, Aad::from(topic.as_bytes()), &mut bytes[NONCE_LEN..])
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}
