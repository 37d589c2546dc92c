//! One source, many viewers: every published frame is offered to each
//! subscriber's small bounded queue. A subscriber whose queue is full skips
//! ahead to the next keyframe instead of slowing the source or anyone else,
//! and a subscriber that joins (or reports picture loss) waits for a keyframe,
//! which the source is asked to produce at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A unit of media that the fan-out can hand to viewers.
pub(crate) trait Frame: Clone {
    /// Whether a decoder can start from this frame.
    fn is_keyframe(&self) -> bool;
}

/// How a source makes a keyframe at once.
type KeyframeHook = Box<dyn Fn() + Send + Sync>;

/// Distributes frames from one source to any number of subscribers.
pub(crate) struct Fanout<T> {
    subscribers: Mutex<Subscribers<T>>,
    /// A keyframe was asked for regardless of subscribers (a doorbell ring).
    keyframe_forced: AtomicBool,
    /// Set by the source: asks it for a keyframe the moment one is wanted.
    /// Without it the source learns so from [`Fanout::publish`] only, one
    /// frame later, and its encoder then takes the frame after that: about
    /// 50 ms at 30 fps before a joining viewer's keyframe, against 30.
    keyframe_hook: Mutex<Option<KeyframeHook>>,
}

struct Subscribers<T> {
    list: Vec<Subscriber<T>>,
    next_id: u64,
}

struct Subscriber<T> {
    id: u64,
    queue: async_channel::Sender<T>,
    awaiting_keyframe: bool,
}

impl<T: Frame> Fanout<T> {
    /// An empty fan-out.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Fanout {
            subscribers: Mutex::new(Subscribers {
                list: Vec::new(),
                next_id: 0,
            }),
            keyframe_forced: AtomicBool::new(false),
            keyframe_hook: Mutex::new(None),
        })
    }

    /// Makes `hook` the way to ask the source for a keyframe at once (a
    /// restarted source sets its own); `publish` still reports a keyframe
    /// wanted, for a request the source could not act on.
    pub(crate) fn on_keyframe_wanted(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self
            .keyframe_hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
    }

    /// Tells the source now that a keyframe is wanted, if it can be told.
    fn keyframe_wanted(&self) {
        let hook = self
            .keyframe_hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(hook) = hook.as_ref() {
            hook();
        }
    }

    /// Adds a subscriber with a queue of `capacity` frames. It receives
    /// nothing until the next keyframe, which is requested from the source.
    pub(crate) fn subscribe(self: &Arc<Self>, capacity: usize) -> Subscription<T> {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        let id = {
            let mut subscribers = self.lock();
            let id = subscribers.next_id;
            subscribers.next_id += 1;
            subscribers.list.push(Subscriber {
                id,
                queue: tx,
                awaiting_keyframe: true,
            });
            id
        };
        self.keyframe_wanted();
        Subscription {
            id,
            queue: rx,
            fanout: Arc::clone(self),
        }
    }

    /// Offers `frame` to every subscriber. Returns whether some subscriber
    /// is waiting for a keyframe, i.e. whether the source should make one.
    pub(crate) fn publish(&self, frame: T) -> bool {
        let keyframe = frame.is_keyframe();
        let mut subscribers = self.lock();
        let mut wanted = false;
        subscribers.list.retain_mut(|sub| {
            if sub.awaiting_keyframe && !keyframe {
                wanted = true;
                return true;
            }
            match sub.queue.try_send(frame.clone()) {
                Ok(()) => sub.awaiting_keyframe = false,
                Err(async_channel::TrySendError::Full(_)) => {
                    sub.awaiting_keyframe = true;
                    wanted = true;
                }
                Err(async_channel::TrySendError::Closed(_)) => return false,
            }
            true
        });
        let forced = !keyframe && self.keyframe_forced.swap(false, Ordering::Relaxed);
        if keyframe {
            self.keyframe_forced.store(false, Ordering::Relaxed);
        }
        wanted || forced
    }

    /// Asks the source for a keyframe now, without making any subscriber
    /// wait for it.
    pub(crate) fn force_keyframe(&self) {
        self.keyframe_forced.store(true, Ordering::Relaxed);
        self.keyframe_wanted();
    }

    /// Number of current subscribers.
    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().list.len()
    }

    fn request_keyframe_for(&self, id: u64) {
        let mut subscribers = self.lock();
        let Some(sub) = subscribers.list.iter_mut().find(|s| s.id == id) else {
            return;
        };
        sub.awaiting_keyframe = true;
        drop(subscribers);
        self.keyframe_wanted();
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().list.retain(|s| s.id != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers<T>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One viewer's end of a [`Fanout`]; unsubscribes when dropped.
pub(crate) struct Subscription<T: Frame> {
    id: u64,
    queue: async_channel::Receiver<T>,
    fanout: Arc<Fanout<T>>,
}

impl<T: Frame> Subscription<T> {
    /// The next frame for this viewer.
    pub(crate) async fn recv(&self) -> Option<T> {
        self.queue.recv().await.ok()
    }

    /// The next frame if one is queued.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.queue.try_recv().ok()
    }

    /// The viewer lost the picture (PLI/FIR): skip to a fresh keyframe.
    pub(crate) fn request_keyframe(&self) {
        self.fanout.request_keyframe_for(self.id);
    }
}

impl<T: Frame> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.fanout.unsubscribe(self.id);
    }
}

/// Coalesces keyframe requests so the encoder is asked at most once per
/// interval, however many viewers join or report loss at once.
#[derive(Debug)]
pub(crate) struct KeyframeGate {
    interval: Duration,
    last_forced: Option<Instant>,
}

impl KeyframeGate {
    /// A gate letting one request through per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        KeyframeGate {
            interval,
            last_forced: None,
        }
    }

    /// Whether to force a keyframe now, given whether one is `wanted`.
    pub(crate) fn should_force(&mut self, wanted: bool, now: Instant) -> bool {
        let due = self
            .last_forced
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if wanted && due {
            self.last_forced = Some(now);
        }
        wanted && due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct TestFrame(u32, bool);

    impl Frame for TestFrame {
        fn is_keyframe(&self) -> bool {
            self.1
        }
    }

    fn key(n: u32) -> TestFrame {
        TestFrame(n, true)
    }

    fn delta(n: u32) -> TestFrame {
        TestFrame(n, false)
    }

    #[test]
    fn the_source_is_asked_for_a_keyframe_the_moment_one_is_wanted() {
        let fanout = Fanout::new();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        fanout.on_keyframe_wanted(move || {
            count.fetch_add(1, Ordering::Relaxed);
        });
        let asks = || asked.load(Ordering::Relaxed);
        let viewer = fanout.subscribe(4);
        assert_eq!(asks(), 1, "a new subscriber");
        assert!(fanout.publish(delta(0)), "still reported to the source");
        fanout.publish(key(1));
        assert_eq!(viewer.try_recv(), Some(key(1)));
        viewer.request_keyframe();
        assert_eq!(asks(), 2, "picture loss");
        fanout.force_keyframe();
        assert_eq!(asks(), 3, "a doorbell ring");
        drop(viewer);
        assert_eq!(asks(), 3);
    }

    fn drain(sub: &Subscription<TestFrame>) -> Vec<u32> {
        std::iter::from_fn(|| sub.try_recv()).map(|f| f.0).collect()
    }

    #[test]
    fn a_new_viewer_starts_at_a_keyframe_and_asks_for_one() {
        let fanout = Fanout::new();
        let first = fanout.subscribe(8);
        assert!(
            fanout.publish(delta(0)),
            "a waiting viewer wants a keyframe"
        );
        assert!(!fanout.publish(key(1)));
        fanout.publish(delta(2));
        let second = fanout.subscribe(8);
        assert!(
            fanout.publish(delta(3)),
            "every join asks again, not only the first"
        );
        assert!(!fanout.publish(key(4)));
        fanout.publish(delta(5));
        assert_eq!(drain(&first), [1, 2, 3, 4, 5]);
        assert_eq!(drain(&second), [4, 5]);
    }

    #[test]
    fn a_slow_viewer_skips_to_the_next_keyframe_without_holding_back_others() {
        let fanout = Fanout::new();
        let slow = fanout.subscribe(2);
        let fast = fanout.subscribe(2);
        fanout.publish(key(0));
        assert_eq!(drain(&fast), [0]);
        fanout.publish(delta(1));
        assert_eq!(drain(&fast), [1]);
        assert!(fanout.publish(delta(2)), "overflow asks for a keyframe");
        assert_eq!(drain(&fast), [2]);
        assert_eq!(drain(&slow), [0, 1]);
        assert!(fanout.publish(delta(3)), "still skipping until a keyframe");
        assert_eq!(drain(&fast), [3]);
        assert!(!fanout.publish(key(4)));
        fanout.publish(delta(5));
        assert_eq!(drain(&slow), [4, 5]);
        assert_eq!(drain(&fast), [4, 5]);
    }

    #[test]
    fn picture_loss_skips_deltas_until_a_keyframe() {
        let fanout = Fanout::new();
        let sub = fanout.subscribe(8);
        fanout.publish(key(0));
        sub.request_keyframe();
        assert!(fanout.publish(delta(1)));
        assert!(!fanout.publish(key(2)));
        assert_eq!(drain(&sub), [0, 2]);
    }

    #[test]
    fn dropped_subscriptions_leave_and_stop_wanting_keyframes() {
        let fanout = Fanout::new();
        let sub = fanout.subscribe(1);
        assert_eq!(fanout.subscriber_count(), 1);
        drop(sub);
        assert_eq!(fanout.subscriber_count(), 0);
        assert!(!fanout.publish(delta(0)));
    }

    #[test]
    fn a_forced_keyframe_is_asked_for_once_and_holds_nobody_back() {
        let fanout = Fanout::new();
        let sub = fanout.subscribe(8);
        fanout.publish(key(0));
        fanout.force_keyframe();
        assert!(fanout.publish(delta(1)), "the source is asked");
        assert!(!fanout.publish(delta(2)), "once");
        assert_eq!(drain(&sub), [0, 1, 2], "nobody skipped a frame");
        fanout.force_keyframe();
        assert!(!fanout.publish(key(3)), "a keyframe came anyway");
        assert!(!fanout.publish(delta(4)));
    }

    #[test]
    fn keyframe_requests_are_coalesced() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut gate = KeyframeGate::new(Duration::from_millis(100));
        assert!(!gate.should_force(false, ms(0)));
        assert!(gate.should_force(true, ms(0)));
        assert!(!gate.should_force(true, ms(33)));
        assert!(!gate.should_force(true, ms(99)));
        assert!(gate.should_force(true, ms(100)));
        assert!(!gate.should_force(false, ms(300)));
        assert!(gate.should_force(true, ms(301)));
    }
}
