//! Sealed mode's cryptography (docs/protocol.md §8): a paired viewer's key
//! id and direction keys, and sealing or opening one payload. Pure functions
//! over bytes; the rules of a sealed session (binding, `seq`, nonces) are in
//! `sealed.rs`.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::signal::protocol::VERSION;

/// Bytes of a viewer's pairing secret.
pub(crate) const SECRET_LEN: usize = 32;
/// Bytes of the SHA-256 prefix that names a key (16 hex digits).
const KID_BYTES: usize = 8;
/// Bytes of the GCM tag after the ciphertext.
const TAG_LEN: usize = 16;
/// HKDF salt of protocol version 1.
const HKDF_SALT: &[u8] = b"peercam-v1";

/// Which way a sealed message travels; each way has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `P/D/in/S`: sealed by the viewer, opened by the device.
    ViewerToDevice,
    /// `P/D/out/S`: sealed by the device, opened by the viewer.
    DeviceToViewer,
}

impl Direction {
    fn info(self) -> &'static [u8] {
        match self {
            Direction::ViewerToDevice => b"viewer-to-device",
            Direction::DeviceToViewer => b"device-to-viewer",
        }
    }
}

/// Why a key string (`<kid>.<secret>`) cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    /// Not `<16 hex digits>.<base64url>`.
    #[error(
        "a viewer key is `<key id>.<secret>`: 16 hex digits, a dot and 43 base64url characters"
    )]
    Shape,
    /// The secret does not decode to 32 bytes.
    #[error("the secret of a viewer key must be 32 bytes in base64url without padding")]
    Secret,
    /// The key id is not the one of the secret: a damaged or edited key.
    #[error("the key id does not match the secret: the key was damaged or edited")]
    Mismatch,
}

/// One paired viewer's key: its id and the two AES-256-GCM keys derived
/// from its secret. `Debug` shows the id only.
pub(crate) struct ViewerKey {
    kid: String,
    secret: [u8; SECRET_LEN],
    to_device: LessSafeKey,
    to_viewer: LessSafeKey,
}

impl fmt::Debug for ViewerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewerKey").field("kid", &self.kid).finish()
    }
}

impl PartialEq for ViewerKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
    }
}

impl ViewerKey {
    /// The key of `secret`.
    pub(crate) fn from_secret(secret: [u8; SECRET_LEN]) -> Self {
        let aead = |direction| {
            let bytes = derive(&secret, direction);
            LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key"),
            )
        };
        ViewerKey {
            kid: kid_of(&secret),
            to_device: aead(Direction::ViewerToDevice),
            to_viewer: aead(Direction::DeviceToViewer),
            secret,
        }
    }

    /// A key with a fresh random secret, for pairing a new viewer.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let mut secret = [0; SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
        Ok(Self::from_secret(secret))
    }

    /// Reads a key string `<kid>.<secret base64url>`, checking that the id
    /// is the secret's.
    pub(crate) fn parse(key: &str) -> Result<Self, KeyError> {
        let (kid, secret) = key.trim().split_once('.').ok_or(KeyError::Shape)?;
        if kid.len() != 2 * KID_BYTES || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Shape);
        }
        let secret: [u8; SECRET_LEN] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KeyError::Secret)?;
        let key = Self::from_secret(secret);
        if key.kid != kid.to_ascii_lowercase() {
            return Err(KeyError::Mismatch);
        }
        Ok(key)
    }

    /// The key id: 16 lowercase hex digits.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// `<kid>.<secret>`, as stored in the key file and carried by pairing links.
    pub(crate) fn key_string(&self) -> String {
        format!("{}.{}", self.kid, URL_SAFE_NO_PAD.encode(self.secret))
    }

    /// The sealed payload of `plaintext` on `topic`, with a random GCM nonce.
    pub(crate) fn seal(&self, direction: Direction, topic: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random number generator works");
        self.seal_with_nonce(direction, topic, plaintext, nonce)
    }

    fn seal_with_nonce(
        &self,
        direction: Direction,
        topic: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .aead(direction)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(topic.as_bytes()),
                &mut sealed[NONCE_LEN..],
            )
            .expect("AES-GCM seals any message under 64 GiB");
        sealed.extend_from_slice(tag.as_ref());
        format!(
            r#"{{"v":{VERSION},"kid":"{}","seal":"{}"}}"#,
            self.kid,
            URL_SAFE_NO_PAD.encode(sealed)
        )
        .into_bytes()
    }

    /// The plaintext of `seal` (the payload's field) published on `topic`,
    /// or `None` when it does not open: another key, direction or topic, or
    /// altered bytes.
    pub(crate) fn open(&self, direction: Direction, topic: &str, seal: &str) -> Option<Vec<u8>> {
        let mut sealed = URL_SAFE_NO_PAD.decode(seal).ok()?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
        let plaintext = self
            .aead(direction)
            .open_in_place(nonce, Aad::from(topic.as_bytes()), &mut sealed[NONCE_LEN..])
            .ok()?
            .len();
        Some(sealed[NONCE_LEN..NONCE_LEN + plaintext].to_vec())
    }

    fn aead(&self, direction: Direction) -> &LessSafeKey {
        match direction {
            Direction::ViewerToDevice => &self.to_device,
            Direction::DeviceToViewer => &self.to_viewer,
        }
    }
}

/// The outer fields of a sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed<'a> {
    /// Key id the sender sealed with.
    pub(crate) kid: &'a str,
    /// base64url of nonce, ciphertext and tag.
    pub(crate) seal: &'a str,
}

/// The `kid` and `seal` of a parsed v1 payload, if it is a sealed one.
pub(crate) fn sealed_fields(object: &serde_json::Map<String, Value>) -> Option<Sealed<'_>> {
    match (object.get("kid"), object.get("seal")) {
        (Some(Value::String(kid)), Some(Value::String(seal))) => Some(Sealed { kid, seal }),
        _ => None,
    }
}

/// The key id of `secret`: SHA-256's first 8 bytes in lowercase hex.
fn kid_of(secret: &[u8; SECRET_LEN]) -> String {
    digest::digest(&digest::SHA256, secret).as_ref()[..KID_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The 32-byte key of one direction: HKDF-SHA256 over the secret.
fn derive(secret: &[u8; SECRET_LEN], direction: Direction) -> [u8; 32] {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let mut key = [0; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT)
        .extract(secret)
        .expand(&[direction.info()], Len32)
        .and_then(|okm| okm.fill(&mut key))
        .expect("32 bytes is within HKDF-SHA256's output limit");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol-vectors.json, fixed by the protocol.
    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../docs/protocol-vectors.json")).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector_key(v: &Value) -> ViewerKey {
        let secret: [u8; 32] = unhex(v["secret_hex"].as_str().unwrap()).try_into().unwrap();
        ViewerKey::from_secret(secret)
    }

    #[test]
    fn kid_keys_and_key_string_match_the_vectors() {
        let v = vectors();
        let key = vector_key(&v);
        assert_eq!(key.kid(), v["kid"]);
        assert_eq!(key.key_string(), v["key_string"]);
        assert_eq!(
            hex(&derive(&key.secret, Direction::ViewerToDevice)),
            v["k_viewer_to_device_hex"]
        );
        assert_eq!(
            hex(&derive(&key.secret, Direction::DeviceToViewer)),
            v["k_device_to_viewer_hex"]
        );
        assert_eq!(ViewerKey::parse(v["key_string"].as_str().unwrap()), Ok(key));
    }

    #[test]
    fn seals_and_opens_the_offer_and_answer_vectors_byte_for_byte() {
        let v = vectors();
        let key = vector_key(&v);
        for (name, direction) in [
            ("offer", Direction::ViewerToDevice),
            ("answer", Direction::DeviceToViewer),
        ] {
            let case = &v[name];
            let topic = case["topic"].as_str().unwrap();
            let plaintext = case["plaintext"].as_str().unwrap().as_bytes();
            assert_eq!(hex(plaintext), case["plaintext_hex"]);
            let nonce = unhex(case["gcm_nonce_hex"].as_str().unwrap())
                .try_into()
                .unwrap();
            let payload = key.seal_with_nonce(direction, topic, plaintext, nonce);
            assert_eq!(
                String::from_utf8(payload).unwrap(),
                case["payload"],
                "{name}"
            );
            let seal = case["seal"].as_str().unwrap();
            let sealed = URL_SAFE_NO_PAD.decode(seal).unwrap();
            let body = &sealed[NONCE_LEN..sealed.len() - TAG_LEN];
            assert_eq!(hex(body), case["ciphertext_hex"], "{name}");
            assert_eq!(hex(&sealed[sealed.len() - TAG_LEN..]), case["tag_hex"]);
            assert_eq!(key.open(direction, topic, seal).as_deref(), Some(plaintext));
        }
    }

    #[test]
    fn the_negative_vectors_do_not_open() {
        let v = vectors();
        let key = vector_key(&v);
        let (offer, answer) = (&v["offer"], &v["answer"]);
        let text = |case: &Value, field: &str| case[field].as_str().unwrap().to_owned();
        let offer_seal = text(offer, "seal");
        let answer_seal = text(answer, "seal");
        let (in_topic, out_topic) = (text(offer, "topic"), text(answer, "topic"));
        assert_eq!(v["negative"]["offer_under_out_topic"], true);
        assert!(
            key.open(Direction::ViewerToDevice, &out_topic, &offer_seal)
                .is_none()
        );
        assert!(
            key.open(Direction::DeviceToViewer, &in_topic, &answer_seal)
                .is_none()
        );
        assert!(
            key.open(Direction::DeviceToViewer, &in_topic, &offer_seal)
                .is_none()
        );
        let mut altered = offer_seal.into_bytes();
        let last = altered.len() - 5;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(
            key.open(Direction::ViewerToDevice, &in_topic, &altered)
                .is_none()
        );
        assert!(
            key.open(Direction::ViewerToDevice, &in_topic, "AAAA")
                .is_none()
        );
        assert!(
            key.open(Direction::ViewerToDevice, &in_topic, "not base64!")
                .is_none()
        );
    }

    #[test]
    fn refuses_malformed_and_mismatched_key_strings() {
        let v = vectors();
        let good = v["key_string"].as_str().unwrap();
        let (kid, secret) = good.split_once('.').unwrap();
        assert_eq!(ViewerKey::parse("nodot").unwrap_err(), KeyError::Shape);
        assert_eq!(
            ViewerKey::parse(&format!("xyz.{secret}")).unwrap_err(),
            KeyError::Shape
        );
        assert_eq!(
            ViewerKey::parse(&format!("{kid}.AAAA")).unwrap_err(),
            KeyError::Secret
        );
        let other_kid = format!("{}0", &kid[..15]);
        assert_eq!(
            ViewerKey::parse(&format!("{other_kid}.{secret}")).unwrap_err(),
            KeyError::Mismatch
        );
    }

    #[test]
    fn random_seals_round_trip_and_differ() {
        let key = ViewerKey::generate().unwrap();
        let topic = "peercam/cam1/out/aaaaaaaaaaaaaaaa";
        let one = key.seal(Direction::DeviceToViewer, topic, b"{\"v\":1}");
        let two = key.seal(Direction::DeviceToViewer, topic, b"{\"v\":1}");
        assert_ne!(one, two, "GCM nonces are random");
        let object: serde_json::Map<String, Value> = serde_json::from_slice(&one).unwrap();
        let fields = sealed_fields(&object).unwrap();
        assert_eq!(fields.kid, key.kid());
        assert_eq!(
            key.open(Direction::DeviceToViewer, topic, fields.seal)
                .as_deref(),
            Some(&b"{\"v\":1}"[..])
        );
        assert!(format!("{key:?}").contains(key.kid()));
        assert!(!format!("{key:?}").contains(&key.key_string()));
    }
}
