use super::*;
use crate::rtc::session::EndReason;
use serde_json::json;

const OFFER: &str = r#"{"v":1,"type":"offer","sdp":"v=0\r\n"}"#;

fn session(n: usize) -> String {
    format!("session-{n:010}")
}

fn payload(text: &str) -> Bytes {
    Bytes::from(text.to_owned())
}

fn candidate(n: u32) -> Bytes {
    payload(
        &json!({"v":1,"type":"candidate","candidate":format!("candidate:{n} 1 udp 1 10.0.0.1 {n} typ host")})
            .to_string(),
    )
}

fn error_code(route: Route) -> ErrorCode {
    match route {
        Route::Reply(DeviceMessage::Error(e)) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn early_candidates_ride_along_with_the_offer() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let s = session(1);
    assert_eq!(table.route(now, &s, &candidate(1), false), Route::Hold);
    table.route(now, &s, &candidate(2), false);
    match table.route(now, &s, &payload(OFFER), false) {
        Route::Start { early, .. } => assert_eq!(early.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        table.route(now, &s, &candidate(3), false),
        Route::Forward(Control::Candidate { .. })
    ));
}

#[test]
fn early_candidates_are_bounded_in_count_and_time() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let s = session(1);
    for n in 0..40 {
        table.route(now, &s, &candidate(n), false);
    }
    match table.route(now, &s, &payload(OFFER), false) {
        Route::Start { early, .. } => assert_eq!(early.len(), MAX_EARLY_CANDIDATES),
        other => panic!("{other:?}"),
    }
    let s2 = session(2);
    table.route(now, &s2, &candidate(1), false);
    let later = now + EARLY_CANDIDATE_TTL + Duration::from_secs(1);
    match table.route(later, &s2, &payload(OFFER), false) {
        Route::Start { early, .. } => assert!(early.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sessions_without_offer_are_bounded_evicting_the_oldest() {
    let t0 = Instant::now();
    let mut table = SessionTable::new(4);
    for n in 0..=MAX_PENDING {
        table.route(
            t0 + Duration::from_millis(n as u64),
            &session(n),
            &candidate(1),
            false,
        );
    }
    assert_eq!(table.pending.len(), MAX_PENDING);
    assert!(
        !table.pending.contains_key(&session(0)),
        "the oldest was evicted"
    );
    assert!(table.pending.contains_key(&session(MAX_PENDING)));
}

#[test]
fn max_viewers_answers_busy_and_ends_that_session() {
    let now = Instant::now();
    let mut table = SessionTable::new(2);
    for n in 0..2 {
        assert!(matches!(
            table.route(now, &session(n), &payload(OFFER), false),
            Route::Start { .. }
        ));
        assert_eq!(table.connected(&session(n)), Admission::Counted);
    }
    assert_eq!(
        error_code(table.route(now, &session(2), &payload(OFFER), false)),
        ErrorCode::Busy
    );
    assert_eq!(
        table.route(now, &session(2), &candidate(1), false),
        Route::Drop(Dropped::EndedSession)
    );
    table.ended(&session(0));
    assert!(matches!(
        table.route(now, &session(3), &payload(OFFER), false),
        Route::Start { .. }
    ));
}

#[test]
fn a_session_connecting_past_max_viewers_is_turned_away() {
    let now = Instant::now();
    let mut table = SessionTable::new(1);
    for n in 0..2 {
        table.route(now, &session(n), &payload(OFFER), false);
    }
    assert_eq!(table.connected(&session(0)), Admission::Counted);
    assert_eq!(table.connected(&session(1)), Admission::Full);
    assert_eq!(table.viewers(), 1);
}

#[test]
fn connecting_sessions_are_bounded_and_only_unheard_ones_make_room() {
    let t0 = Instant::now();
    let max = 2;
    let mut table = SessionTable::new(max);
    let connecting = max + EXTRA_CONNECTING;
    for n in 0..connecting {
        let at = t0 + Duration::from_millis(n as u64);
        assert!(matches!(
            table.route(at, &session(n), &payload(OFFER), false),
            Route::Start { evicted: None, .. }
        ));
    }
    table.heard(&session(0));
    let later = t0 + Duration::from_millis(100);
    match table.route(later, &session(100), &payload(OFFER), false) {
        Route::Start { evicted, .. } => assert_eq!(
            evicted,
            Some(session(1)),
            "the oldest call that never heard from its viewer"
        ),
        other => panic!("{other:?}"),
    }
    for n in 2..connecting {
        table.heard(&session(n));
    }
    table.heard(&session(100));
    assert_eq!(
        error_code(table.route(later, &session(101), &payload(OFFER), false)),
        ErrorCode::Busy,
        "every connecting call is real: nobody is pushed out"
    );
}

#[test]
fn first_offers_are_rate_limited() {
    let t0 = Instant::now();
    let mut table = SessionTable::new(64);
    let mut started = 0;
    for n in 0..30 {
        match table.route(t0, &session(n), &payload(OFFER), false) {
            Route::Start { .. } => {
                started += 1;
                table.heard(&session(n));
            }
            other => assert_eq!(error_code(other), ErrorCode::Busy),
        }
    }
    assert_eq!(started, FIRST_OFFER_BURST as usize);
    let second = t0 + Duration::from_secs(1);
    let more = (30..60)
        .filter(|n| {
            matches!(
                table.route(second, &session(*n), &payload(OFFER), false),
                Route::Start { .. }
            )
        })
        .count();
    assert_eq!(more, FIRST_OFFERS_PER_SEC as usize);
}

#[test]
fn early_candidates_are_bounded_in_bytes_and_line_length() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let long = |n: usize, len: usize| {
        let line = format!(
            "candidate:{n} 1 udp 1 10.0.0.1 1 typ host {}",
            "x".repeat(len)
        );
        payload(&json!({"v":1,"type":"candidate","candidate":line}).to_string())
    };
    assert_eq!(
        table.route(now, &session(0), &long(0, MAX_CANDIDATE_LINE), false),
        Route::Drop(Dropped::CandidateTooLong)
    );
    let mut held = 0;
    for n in 0..MAX_PENDING * MAX_EARLY_CANDIDATES {
        let route = table.route(now, &session(n % MAX_PENDING), &long(n, 900), false);
        if route == Route::Hold {
            held += 1;
        }
    }
    assert!(held * 900 <= MAX_EARLY_BYTES, "{held} held");
    assert!(table.early_bytes <= MAX_EARLY_BYTES);
    let later = now + EARLY_CANDIDATE_TTL;
    table.route(later, &session(0), &payload("x"), false);
    assert_eq!(table.early_bytes, 0, "expired candidates free their bytes");
}

#[test]
fn viewers_counts_connected_sessions_only() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    table.route(now, &session(1), &payload(OFFER), false);
    table.route(now, &session(2), &payload(OFFER), false);
    assert_eq!(table.viewers(), 0);
    assert_eq!(table.connected(&session(1)), Admission::Counted);
    assert_eq!(table.connected(&session(1)), Admission::Unchanged);
    assert_eq!(table.viewers(), 1);
    assert!(
        !table.ended(&session(2)),
        "an unconnected session was never counted"
    );
    assert!(table.ended(&session(1)));
    assert_eq!(table.viewers(), 0);
}

#[test]
fn duplicates_and_retained_messages_are_ignored() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let s = session(1);
    assert_eq!(
        table.route(now, &s, &payload(OFFER), true),
        Route::Drop(Dropped::Retained)
    );
    assert!(matches!(
        table.route(now, &s, &payload(OFFER), false),
        Route::Start { .. }
    ));
    assert_eq!(
        table.route(now, &s, &payload(OFFER), false),
        Route::Drop(Dropped::Duplicate)
    );
    assert!(matches!(
        table.route(now, &s, &candidate(1), false),
        Route::Forward(_)
    ));
    assert_eq!(
        table.route(now, &s, &candidate(1), false),
        Route::Drop(Dropped::Duplicate)
    );
    let bye = payload(r#"{"v":1,"type":"bye"}"#);
    assert_eq!(
        table.route(now, &s, &bye, false),
        Route::Forward(Control::End(EndReason::ViewerBye))
    );
}

#[test]
fn errors_are_limited_to_one_per_second_per_session_except_first_offers() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let s = session(1);
    table.route(now, &s, &payload(OFFER), false);
    let unknown = payload(r#"{"v":1,"type":"frobnicate"}"#);
    assert_eq!(
        error_code(table.route(now, &s, &unknown, false)),
        ErrorCode::Unsupported
    );
    assert_eq!(
        table.route(now, &s, &unknown, false),
        Route::Drop(Dropped::ErrorRateLimit)
    );
    let later = now + Duration::from_secs(1);
    assert_eq!(
        error_code(table.route(later, &s, &unknown, false)),
        ErrorCode::Unsupported
    );
    let fresh = session(2);
    assert_eq!(
        error_code(table.route(now, &fresh, &unknown, false)),
        ErrorCode::Unsupported
    );
    let bad_offer = payload(r#"{"v":1,"type":"offer"}"#);
    assert_eq!(
        error_code(table.route(now, &fresh, &bad_offer, false)),
        ErrorCode::BadRequest
    );
    assert_eq!(
        table.route(now, &fresh, &payload(OFFER), false),
        Route::Drop(Dropped::EndedSession)
    );
}

#[test]
fn a_session_without_offer_is_kept_while_its_error_limit_runs() {
    let start = Instant::now();
    let mut table = SessionTable::new(1);
    let s = session(1);
    assert_eq!(table.route(start, &s, &candidate(1), false), Route::Hold);
    let unknown = payload(r#"{"v":1,"type":"frobnicate"}"#);
    let before_expiry = start + EARLY_CANDIDATE_TTL - Duration::from_millis(100);
    assert_eq!(
        error_code(table.route(before_expiry, &s, &unknown, false)),
        ErrorCode::Unsupported
    );
    let after_expiry = before_expiry + ERROR_INTERVAL / 2;
    assert_eq!(
        table.route(after_expiry, &s, &unknown, false),
        Route::Drop(Dropped::ErrorRateLimit),
        "the early candidate expired, but the error limit still holds"
    );
}

#[test]
fn talk_is_routed_only_for_calls_that_send_audio() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    let talk = payload(r#"{"v":1,"type":"talk","on":true}"#);
    table.route(now, &session(1), &payload(OFFER), false);
    table.accepted(&session(1), true);
    assert_eq!(
        table.route(now, &session(1), &talk, false),
        Route::Talk(true)
    );
    let off = payload(r#"{"v":1,"type":"talk","on":false}"#);
    assert_eq!(
        table.route(now, &session(1), &off, false),
        Route::Talk(false)
    );
    assert_eq!(
        table.route(now, &session(1), &talk, false),
        Route::Talk(true),
        "talk is acted on every time it arrives"
    );
    table.route(now, &session(2), &payload(OFFER), false);
    table.accepted(&session(2), false);
    assert_eq!(
        error_code(table.route(now, &session(2), &talk, false)),
        ErrorCode::Unsupported
    );
}

#[test]
fn garbage_is_dropped_and_talk_is_unsupported_without_audio() {
    let now = Instant::now();
    let mut table = SessionTable::new(4);
    assert_eq!(
        table.route(now, &session(1), &payload("nope"), false),
        Route::Drop(Dropped::Unreadable(DropReason::NotJsonObject))
    );
    assert_eq!(table.pending.len(), 0, "garbage does not create sessions");
    table.route(now, &session(1), &payload(OFFER), false);
    let talk = payload(r#"{"v":1,"type":"talk","on":true}"#);
    assert_eq!(
        error_code(table.route(now, &session(1), &talk, false)),
        ErrorCode::Unsupported
    );
    assert_eq!(table.dropped(), 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One thing that can happen to the table.
    #[derive(Debug, Clone)]
    enum Step {
        Payload {
            session: usize,
            kind: u8,
            size: usize,
            retained: bool,
        },
        Heard(usize),
        Connected(usize),
        Ended(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0..80usize, 0..9u8, 0..2000usize, proptest::bool::weighted(0.05)).prop_map(
                |(session, kind, size, retained)| Step::Payload { session, kind, size, retained }
            ),
            1 => (0..80usize).prop_map(Step::Heard),
            1 => (0..80usize).prop_map(Step::Connected),
            1 => (0..80usize).prop_map(Step::Ended),
        ]
    }

    fn body(kind: u8, size: usize) -> Bytes {
        let filler = "a".repeat(size);
        let text = match kind {
            0 => r#"{"v":1,"type":"offer","sdp":"v=0\r\n"}"#.to_owned(),
            1 => json!({"v":1,"type":"candidate","candidate":format!("candidate:1 1 udp 1 10.0.0.1 9 typ host {filler}")}).to_string(),
            2 => json!({"v":1,"type":"talk","on":size.is_multiple_of(2)}).to_string(),
            3 => r#"{"v":1,"type":"bye"}"#.to_owned(),
            4 => r#"{"v":1,"type":"ice-servers"}"#.to_owned(),
            5 => json!({"v":2,"type":"offer"}).to_string(),
            6 => json!({"v":1,"type":"frobnicate","x":filler}).to_string(),
            7 => filler,
            _ => "x".repeat(protocol::MAX_PAYLOAD + 1),
        };
        Bytes::from(text)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_bound_holds_whatever_arrives(
            max_viewers in 1..6usize,
            steps in proptest::collection::vec((step(), 0..1500u64), 1..400),
        ) {
            let mut table = SessionTable::new(max_viewers);
            let mut now = Instant::now();
            let mut last_error: HashMap<String, Instant> = HashMap::new();
            for (step, advance) in steps {
                now += Duration::from_millis(advance);
                match step {
                    Step::Payload { session: n, kind, size, retained } => {
                        let id = session(n);
                        let route = table.route(now, &id, &body(kind, size), retained);
                        if let Route::Reply(DeviceMessage::Error(error)) = &route
                            && error.re != "offer"
                        {
                            if let Some(previous) = last_error.get(&id) {
                                prop_assert!(
                                    now.saturating_duration_since(*previous) >= ERROR_INTERVAL,
                                    "two errors within a second for {}", id
                                );
                            }
                            last_error.insert(id.clone(), now);
                        }
                    }
                    Step::Heard(n) => table.heard(&session(n)),
                    Step::Connected(n) => {
                        table.connected(&session(n));
                    }
                    Step::Ended(n) => {
                        table.ended(&session(n));
                    }
                }
                prop_assert!(table.pending.len() <= MAX_PENDING);
                prop_assert!(table.pending.values().all(|p| p.early.len() <= MAX_EARLY_CANDIDATES));
                let early: usize = table.pending.values().map(|p| early_size(&p.early)).sum();
                prop_assert_eq!(early, table.early_bytes);
                prop_assert!(table.early_bytes <= MAX_EARLY_BYTES);
                prop_assert!(table.viewers() <= max_viewers);
                prop_assert!(table.live.len() - table.viewers() <= max_viewers + EXTRA_CONNECTING);
                prop_assert!(table.ended.len() <= MAX_ENDED);
                prop_assert_eq!(table.ended.len(), table.ended_set.len());
            }
        }
    }
}

/// What each kind of payload costs the table, per message (a benchmark:
/// `bench/soak` runs it in release; it prints, it does not assert).
#[test]
#[ignore = "benchmark: bench/soak"]
fn route_cost() {
    type Message = Box<dyn Fn(usize) -> (String, Bytes)>;
    let kinds: [(&str, Message); 5] = [
        (
            "garbage",
            Box::new(|n| (session(n % 1000), payload("not json"))),
        ),
        (
            "early candidate",
            Box::new(|n| (session(n % 1000), candidate(n as u32))),
        ),
        (
            "candidate on a live call",
            Box::new(|n| (session(0), candidate(n as u32))),
        ),
        (
            "first offer",
            Box::new(|n| (session(n + 10), payload(OFFER))),
        ),
        (
            "oversized",
            Box::new(|n| {
                (
                    session(n % 1000),
                    Bytes::from(vec![b'x'; protocol::MAX_PAYLOAD + 1]),
                )
            }),
        ),
    ];
    const MESSAGES: usize = 100_000;
    for (name, message) in kinds {
        let mut table = SessionTable::new(4);
        let t0 = Instant::now();
        table.route(t0, &session(0), &payload(OFFER), false);
        let messages: Vec<(String, Bytes)> = (0..MESSAGES).map(&message).collect();
        let started = Instant::now();
        for (n, (session, payload)) in messages.iter().enumerate() {
            let now = t0 + Duration::from_micros(n as u64 * 100);
            std::hint::black_box(table.route(now, session, payload, false));
        }
        let each = started.elapsed() / MESSAGES as u32;
        println!("session table, {name}: {each:?} per message");
    }
}
