//! The signaling contract of `docs/protocol.md` (version 1) as pure functions:
//! topic names, inbound payload parsing with the documented rejections, and
//! the JSON the device publishes. No I/O here, so every rule is unit-tested.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::IceServerConfig;
use crate::rtc::ice::servers::TurnAuth;

/// The only protocol version this build speaks.
pub(crate) const VERSION: u64 = 1;
/// Payloads larger than this are dropped unread.
pub(crate) const MAX_PAYLOAD: usize = 65_536;

/// Why the device refuses a message it will answer with an `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ErrorCode {
    /// Malformed message or SDP.
    BadRequest,
    /// `max_viewers` reached.
    Busy,
    /// No common codec, unknown `type`, or `v` not 1.
    Unsupported,
    /// The device failed on its side.
    Internal,
    /// Sealed mode: the sender is not a paired viewer (sent unsealed).
    Unauthorized,
    /// Sealed mode: a first offer with an old nonce, or on a used session id.
    Stale,
}

/// A refusal to act on an inbound payload: either dropped in silence (and
/// counted) or answered with an `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Dropped without a reply, for the reason given.
    Drop(DropReason),
    /// Answered with `error`.
    Error(ErrorReply),
}

/// Why a payload was dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Over [`MAX_PAYLOAD`] bytes.
    TooLarge,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not a JSON object.
    NotJsonObject,
    /// No numeric `v` field.
    NoVersion,
}

/// The fields of an `error` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorReply {
    /// Machine-readable error class.
    pub(crate) code: ErrorCode,
    /// A sentence a person can act on.
    pub(crate) message: String,
    /// The `type` of the message this answers.
    pub(crate) re: String,
}

impl ErrorReply {
    /// An error answering a message of type `re`.
    pub(crate) fn new(code: ErrorCode, re: &str, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
            re: re.to_owned(),
        }
    }
}

/// An ICE candidate in the `RTCIceCandidateInit` shape, as both sides trickle it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CandidateInit {
    /// `candidate:…` line, or empty for end-of-candidates.
    pub(crate) candidate: String,
    /// The m-line's mid this applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sdp_mid: Option<String>,
    /// The m-line's index this applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sdp_m_line_index: Option<u16>,
    /// ICE ufrag of the generation this candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) username_fragment: Option<String>,
}

impl CandidateInit {
    /// True for the end-of-candidates marker (`candidate: ""`).
    pub(crate) fn is_end_of_candidates(&self) -> bool {
        self.candidate.is_empty()
    }
}

/// A message a viewer sends to the device on `P/D/in/S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ViewerMessage {
    /// Ask for ICE servers (with credentials) before offering.
    IceServers,
    /// Start or renegotiate the call.
    Offer {
        /// The viewer's SDP offer.
        sdp: String,
    },
    /// A trickled remote candidate.
    Candidate(CandidateInit),
    /// Ask for (`true`) or release (`false`) the talk-back floor.
    Talk {
        /// Requested floor state.
        on: bool,
    },
    /// End the call.
    Bye {
        /// Free text, for logs.
        reason: Option<String>,
    },
}

/// One STUN/TURN server in the W3C `RTCIceServer` shape.
///
/// Made from `[[webrtc.ice_servers]]` with [`IceServer::public`] (status)
/// or [`IceServer::private`] (per-call replies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub(crate) urls: Vec<String>,
    /// TURN user name (only in the `ice-servers` reply, never in status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    /// TURN password (only in the `ice-servers` reply, never in status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) credential: Option<String>,
}

impl IceServer {
    /// As the retained status shows it: URLs only, never credentials.
    pub(crate) fn public(server: &IceServerConfig) -> Self {
        IceServer {
            urls: server.urls.clone(),
            username: None,
            credential: None,
        }
    }

    /// As one call's `ice-servers` reply carries it, credentials included:
    /// minted for `now` (Unix seconds) where the server has a shared secret.
    pub(crate) fn private(server: &IceServerConfig, now: u64) -> Self {
        let credentials = TurnAuth::from_config(server).map(|auth| auth.credentials(now));
        IceServer {
            urls: server.urls.clone(),
            username: credentials.as_ref().map(|(username, _)| username.clone()),
            credential: credentials.map(|(_, password)| password),
        }
    }
}

/// A message the device sends to one viewer on `P/D/out/S`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum DeviceMessage {
    /// ICE servers for the viewer's `RTCPeerConnection`.
    IceServers {
        /// Servers, TURN credentials included.
        ice_servers: Vec<IceServer>,
    },
    /// The device's SDP answer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled local candidate.
    Candidate(CandidateInit),
    /// The answer to a floor request.
    Talk {
        /// Whether this viewer now holds the floor.
        granted: bool,
        /// Label of the current holder.
        holder: Option<String>,
    },
    /// An event also published on `P/D/event`.
    Event {
        /// The event object.
        event: Value,
    },
    /// The device ends the call.
    Bye {
        /// Why, for the viewer's UI.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A refusal.
    Error(ErrorReply),
}

#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    v: u64,
    #[serde(flatten)]
    body: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// Serializes a message as a compact v1 payload.
pub(crate) fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        v: VERSION,
        body,
        seq: None,
    })
    .expect("protocol types always serialize")
}

/// Serializes a message as the body of a sealed payload, numbered `seq`.
pub(crate) fn encode_sealed_body(message: &DeviceMessage, seq: u64) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        v: VERSION,
        body: message,
        seq: Some(seq),
    })
    .expect("protocol types always serialize")
}

/// The retained presence message on `P/D/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Status {
    /// Always true; the offline form is [`offline_status`].
    pub(crate) online: bool,
    /// Human-readable device name.
    pub(crate) name: String,
    /// Whether the device runs in sealed mode.
    pub(crate) sealed: bool,
    /// Sealed mode: the nonce a first offer must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
    /// Video codecs the device sends (`a=rtpmap` names).
    pub(crate) video: Vec<String>,
    /// `"sendrecv"`, `"sendonly"` or null.
    pub(crate) audio: Option<String>,
    /// Connected sessions.
    pub(crate) viewers: usize,
    /// Cap on sessions with an accepted offer.
    pub(crate) max_viewers: usize,
    /// STUN/TURN URLs without credentials.
    pub(crate) ice_servers: Vec<IceServer>,
}

/// The `ring` event of a doorbell press at `at`.
pub(crate) fn ring_event(at: SystemTime) -> Value {
    serde_json::json!({"v": VERSION, "type": "ring", "at": utc_timestamp(at)})
}

/// The `talk` event: the floor is now held by `holder` (`None`: nobody).
pub(crate) fn talk_event(holder: Option<&str>) -> Value {
    serde_json::json!({"v": VERSION, "type": "talk", "holder": holder})
}

/// `at` in whole seconds since the Unix epoch.
pub(crate) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `at` as an RFC 3339 UTC timestamp to the second, e.g. `2026-11-23T19:00:00Z`.
pub(crate) fn utc_timestamp(at: SystemTime) -> String {
    let secs = unix_seconds(at);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The retained status (and last will) of a device that is not running.
pub(crate) fn offline_status() -> Vec<u8> {
    br#"{"v":1,"online":false}"#.to_vec()
}

/// Parses a payload received on `P/D/in/S`, applying every rule of
/// "Bad input and bounds" that can be decided from the payload alone.
pub(crate) fn parse_viewer_message(payload: &[u8]) -> Result<ViewerMessage, Rejection> {
    let object = parse_object(payload)?;
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(Rejection::Error(ErrorReply::new(
                ErrorCode::BadRequest,
                "",
                "The message has no \"type\" string.",
            )));
        }
    };
    let body = Value::Object(object);
    let bad = |what: &str| {
        Rejection::Error(ErrorReply::new(
            ErrorCode::BadRequest,
            &kind,
            format!("Malformed \"{kind}\" message: {what}."),
        ))
    };
    match kind.as_str() {
        "ice-servers" => Ok(ViewerMessage::IceServers),
        "offer" => {
            #[derive(Deserialize)]
            struct Offer {
                sdp: String,
            }
            let offer: Offer = serde_json::from_value(body).map_err(|e| bad(&e.to_string()))?;
            if offer.sdp.trim().is_empty() {
                return Err(bad("\"sdp\" is empty"));
            }
            Ok(ViewerMessage::Offer { sdp: offer.sdp })
        }
        "candidate" => {
            let candidate: CandidateInit =
                serde_json::from_value(body).map_err(|e| bad(&e.to_string()))?;
            if !candidate.is_end_of_candidates() && !candidate.candidate.starts_with("candidate:") {
                return Err(bad(
                    "\"candidate\" must start with \"candidate:\" or be empty",
                ));
            }
            Ok(ViewerMessage::Candidate(candidate))
        }
        "talk" => {
            #[derive(Deserialize)]
            struct Talk {
                on: bool,
            }
            let talk: Talk = serde_json::from_value(body).map_err(|e| bad(&e.to_string()))?;
            Ok(ViewerMessage::Talk { on: talk.on })
        }
        "bye" => {
            #[derive(Deserialize)]
            struct Bye {
                #[serde(default)]
                reason: Option<String>,
            }
            let bye: Bye = serde_json::from_value(body).map_err(|e| bad(&e.to_string()))?;
            Ok(ViewerMessage::Bye { reason: bye.reason })
        }
        other => Err(Rejection::Error(ErrorReply::new(
            ErrorCode::Unsupported,
            other,
            format!("Unknown message type \"{other}\"."),
        ))),
    }
}

/// Checks size, UTF-8, JSON-object shape and version; returns the object.
fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, Rejection> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Rejection::Drop(DropReason::TooLarge));
    }
    let text = std::str::from_utf8(payload).map_err(|_| Rejection::Drop(DropReason::NotUtf8))?;
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return Err(Rejection::Drop(DropReason::NotJsonObject));
    };
    match object.get("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => Ok(object),
        Some(Value::Number(n)) => {
            let re = object.get("type").and_then(Value::as_str).unwrap_or("");
            Err(Rejection::Error(ErrorReply::new(
                ErrorCode::Unsupported,
                re,
                format!("Protocol version {n} is not supported; this device speaks version 1."),
            )))
        }
        _ => Err(Rejection::Drop(DropReason::NoVersion)),
    }
}

/// Whether `id` is a valid session id (`[A-Za-z0-9_-]{16,64}`).
pub(crate) fn is_valid_session_id(id: &str) -> bool {
    crate::config::is_topic_id(id, 16..=64)
}

/// The topic names of one device under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topics {
    base: String,
}

impl Topics {
    /// Topics for device `device` under `prefix` (both already validated).
    pub(crate) fn new(prefix: &str, device: &str) -> Self {
        Topics {
            base: format!("{prefix}/{device}"),
        }
    }

    /// `P/D/status`: retained presence and last will.
    pub(crate) fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// `P/D/event`: rings and floor changes for integrations.
    pub(crate) fn event(&self) -> String {
        format!("{}/event", self.base)
    }

    /// `P/D/in/+`: what the device subscribes to.
    pub(crate) fn inbound_filter(&self) -> String {
        format!("{}/in/+", self.base)
    }

    /// `P/D/out/S`: where the device answers session `S`.
    pub(crate) fn outbound(&self, session: &str) -> String {
        format!("{}/out/{session}", self.base)
    }

    /// The session id of an inbound topic `P/D/in/S`, if `topic` is one with a valid `S`.
    pub(crate) fn session_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let session = topic.strip_prefix(&self.base)?.strip_prefix("/in/")?;
        is_valid_session_id(session).then_some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ViewerMessage, Rejection> {
        parse_viewer_message(value.to_string().as_bytes())
    }

    fn error_code(result: Result<ViewerMessage, Rejection>) -> (ErrorCode, String) {
        match result {
            Err(Rejection::Error(e)) => (e.code, e.re),
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    #[test]
    fn events_carry_a_utc_timestamp_and_the_holder() {
        use std::time::Duration;
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(utc_timestamp(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(at(1_795_460_400)), "2026-11-23T19:00:00Z");
        assert_eq!(utc_timestamp(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(
            ring_event(at(1_795_460_400)),
            json!({"v":1,"type":"ring","at":"2026-11-23T19:00:00Z"})
        );
        assert_eq!(
            talk_event(Some("alice")),
            json!({"v":1,"type":"talk","holder":"alice"})
        );
        assert_eq!(talk_event(None), json!({"v":1,"type":"talk","holder":null}));
        let event = encode(&DeviceMessage::Event {
            event: talk_event(None),
        });
        let event: Value = serde_json::from_slice(&event).unwrap();
        assert_eq!(
            event,
            json!({"v":1,"type":"event","event":{"v":1,"type":"talk","holder":null}})
        );
    }

    #[test]
    fn parses_every_viewer_message_type() {
        assert_eq!(
            parse(json!({"v":1,"type":"ice-servers"})),
            Ok(ViewerMessage::IceServers)
        );
        assert_eq!(
            parse(json!({"v":1,"type":"offer","sdp":"v=0\r\n","nonce":"abc","extra":1})),
            Ok(ViewerMessage::Offer {
                sdp: "v=0\r\n".into(),
            })
        );
        assert_eq!(
            parse(
                json!({"v":1,"type":"candidate","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host",
                "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"uf"})
            ),
            Ok(ViewerMessage::Candidate(CandidateInit {
                candidate: "candidate:1 1 udp 1 1.2.3.4 5 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: Some("uf".into()),
            }))
        );
        let end = parse(json!({"v":1,"type":"candidate","candidate":"","sdpMid":null}));
        assert!(matches!(end, Ok(ViewerMessage::Candidate(c)) if c.is_end_of_candidates()));
        assert_eq!(
            parse(json!({"v":1,"type":"talk","on":true})),
            Ok(ViewerMessage::Talk { on: true })
        );
        assert_eq!(
            parse(json!({"v":1,"type":"bye"})),
            Ok(ViewerMessage::Bye { reason: None })
        );
        assert_eq!(
            parse(json!({"v":1,"type":"bye","reason":"done"})),
            Ok(ViewerMessage::Bye {
                reason: Some("done".into())
            })
        );
    }

    #[test]
    fn drops_what_is_not_a_v1_json_object() {
        let drop = |payload: &[u8]| match parse_viewer_message(payload) {
            Err(Rejection::Drop(reason)) => reason,
            other => panic!("expected a drop, got {other:?}"),
        };
        assert_eq!(drop(b"not json"), DropReason::NotJsonObject);
        assert_eq!(drop(b"[1,2]"), DropReason::NotJsonObject);
        assert_eq!(drop(b"\"v\""), DropReason::NotJsonObject);
        assert_eq!(drop(b"\xff\xfe"), DropReason::NotUtf8);
        assert_eq!(drop(br#"{"type":"offer"}"#), DropReason::NoVersion);
        assert_eq!(drop(br#"{"v":"1","type":"offer"}"#), DropReason::NoVersion);
        let mut big = br#"{"v":1,"type":"bye","reason":""#.to_vec();
        big.resize(MAX_PAYLOAD + 1, b'a');
        assert_eq!(drop(&big), DropReason::TooLarge);
    }

    #[test]
    fn answers_other_versions_and_unknown_types_with_unsupported() {
        assert_eq!(
            error_code(parse(json!({"v":2,"type":"offer","sdp":"x"}))),
            (ErrorCode::Unsupported, "offer".into())
        );
        assert_eq!(
            error_code(parse(json!({"v":1.5}))),
            (ErrorCode::Unsupported, "".into())
        );
        assert_eq!(
            error_code(parse(json!({"v":1,"type":"frobnicate"}))),
            (ErrorCode::Unsupported, "frobnicate".into())
        );
    }

    #[test]
    fn answers_malformed_v1_messages_with_bad_request() {
        let cases = [
            (json!({"v":1}), ""),
            (json!({"v":1,"type":7}), ""),
            (json!({"v":1,"type":"offer"}), "offer"),
            (json!({"v":1,"type":"offer","sdp":42}), "offer"),
            (json!({"v":1,"type":"offer","sdp":"  "}), "offer"),
            (json!({"v":1,"type":"candidate"}), "candidate"),
            (
                json!({"v":1,"type":"candidate","candidate":"1 1 udp"}),
                "candidate",
            ),
            (
                json!({"v":1,"type":"candidate","candidate":"candidate:x","sdpMLineIndex":-1}),
                "candidate",
            ),
            (json!({"v":1,"type":"talk"}), "talk"),
            (json!({"v":1,"type":"talk","on":"yes"}), "talk"),
            (json!({"v":1,"type":"bye","reason":5}), "bye"),
        ];
        for (value, re) in cases {
            assert_eq!(
                error_code(parse(value.clone())),
                (ErrorCode::BadRequest, re.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn encodes_device_messages_with_version_and_type() {
        let value = |m: &DeviceMessage| serde_json::from_slice::<Value>(&encode(m)).unwrap();
        assert_eq!(
            value(&DeviceMessage::Answer { sdp: "v=0".into() }),
            json!({"v":1,"type":"answer","sdp":"v=0"})
        );
        assert_eq!(
            value(&DeviceMessage::Candidate(CandidateInit {
                candidate: "candidate:1".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            })),
            json!({"v":1,"type":"candidate","candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0})
        );
        assert_eq!(
            value(&DeviceMessage::Error(ErrorReply::new(
                ErrorCode::Busy,
                "offer",
                "Full."
            ))),
            json!({"v":1,"type":"error","code":"busy","message":"Full.","re":"offer"})
        );
        assert_eq!(
            value(&DeviceMessage::Bye { reason: None }),
            json!({"v":1,"type":"bye"})
        );
        assert_eq!(
            value(&DeviceMessage::Talk {
                granted: false,
                holder: Some("viewer".into())
            }),
            json!({"v":1,"type":"talk","granted":false,"holder":"viewer"})
        );
        assert_eq!(
            value(&DeviceMessage::IceServers {
                ice_servers: vec![IceServer {
                    urls: vec!["turn:t:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into())
                }]
            }),
            json!({"v":1,"type":"ice-servers","ice_servers":[{"urls":["turn:t:3478"],"username":"u","credential":"p"}]})
        );
        assert_eq!(
            value(&DeviceMessage::Event {
                event: json!({"v":1,"type":"ring"})
            }),
            json!({"v":1,"type":"event","event":{"v":1,"type":"ring"}})
        );
    }

    #[test]
    fn status_and_offline_status() {
        let status = Status {
            online: true,
            name: "Door".into(),
            sealed: false,
            nonce: None,
            video: vec!["H264".into()],
            audio: None,
            viewers: 1,
            max_viewers: 4,
            ice_servers: vec![IceServer {
                urls: vec!["stun:s:3478".into()],
                username: None,
                credential: None,
            }],
        };
        let value: Value = serde_json::from_slice(&encode(&status)).unwrap();
        assert_eq!(
            value,
            json!({"v":1,"online":true,"name":"Door","sealed":false,"video":["H264"],"audio":null,
                "viewers":1,"max_viewers":4,"ice_servers":[{"urls":["stun:s:3478"]}]})
        );
        let offline: Value = serde_json::from_slice(&offline_status()).unwrap();
        assert_eq!(offline, json!({"v":1,"online":false}));
    }

    #[test]
    fn ice_servers_carry_static_or_minted_credentials_only_in_replies() {
        let server = |secret: Option<&str>| {
            let text = match secret {
                Some(secret) => format!(
                    "[[webrtc.ice_servers]]\nurls = [\"turn:t:3478\"]\nusername = \"door\"\n\
                     secret = \"{secret}\"\ncredential_lifetime_secs = 600\n"
                ),
                None => "[[webrtc.ice_servers]]\nurls = [\"turn:t:3478\"]\nusername = \"u\"\n\
                         credential = \"p\"\n"
                    .to_owned(),
            };
            crate::config::Config::parse(&text, std::path::Path::new("t.toml"))
                .unwrap()
                .webrtc
                .ice_servers
                .remove(0)
        };
        let fixed = IceServer::private(&server(None), 1000);
        assert_eq!(
            (fixed.username.as_deref(), fixed.credential.as_deref()),
            (Some("u"), Some("p"))
        );
        let minted = IceServer::private(&server(Some("s3cret")), 1000);
        assert_eq!(minted.username.as_deref(), Some("1600:door"));
        assert_eq!(minted.credential.as_ref().map(String::len), Some(28));
        let public = IceServer::public(&server(Some("s3cret")));
        assert_eq!((public.username, public.credential), (None, None));
    }

    #[test]
    fn validates_session_ids() {
        assert!(is_valid_session_id("abcdefghijklmnop"));
        assert!(!is_valid_session_id("short"));
        assert!(!is_valid_session_id("abcdefghijklmno/"));
    }

    #[test]
    fn topics() {
        let topics = Topics::new("home/cams", "door");
        assert_eq!(topics.status(), "home/cams/door/status");
        assert_eq!(topics.event(), "home/cams/door/event");
        assert_eq!(topics.inbound_filter(), "home/cams/door/in/+");
        assert_eq!(topics.outbound("S"), "home/cams/door/out/S");
        assert_eq!(
            topics.session_of("home/cams/door/in/abcdefghijklmnop"),
            Some("abcdefghijklmnop")
        );
        assert_eq!(topics.session_of("home/cams/door/in/short"), None);
        assert_eq!(
            topics.session_of("home/cams/other/in/abcdefghijklmnop"),
            None
        );
        assert_eq!(
            topics.session_of("home/cams/door/out/abcdefghijklmnop"),
            None
        );
    }
}
