//! The bounded queue between a camera and its inference worker. When it is full the oldest
//! frame is dropped and counted: capture never waits for inference, and the worker always
//! gets the freshest frames.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::capture::Frame;

/// What waiting on the queue gave.
pub enum Popped {
    Frame(Frame),
    /// Nothing arrived in time.
    Empty,
    /// Closed and drained: no frame will come.
    Closed,
}

pub struct FrameQueue {
    state: Mutex<State>,
    ready: Condvar,
    room: Condvar,
    capacity: usize,
}

struct State {
    frames: VecDeque<Frame>,
    closed: bool,
    dropped: u64,
    high_water: usize,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> FrameQueue {
        FrameQueue {
            state: Mutex::new(State {
                frames: VecDeque::with_capacity(capacity),
                closed: false,
                dropped: 0,
                high_water: 0,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a frame; returns true if the oldest frame was dropped to make room.
    pub fn push(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        let dropped = s.frames.len() >= self.capacity;
        if dropped {
            s.frames.pop_front();
            s.dropped += 1;
        }
        self.enqueue(s, frame);
        dropped
    }

    /// Appends under the held lock, then wakes the consumer.
    fn enqueue(&self, mut s: std::sync::MutexGuard<'_, State>, frame: Frame) {
        s.frames.push_back(frame);
        s.high_water = s.high_water.max(s.frames.len());
        drop(s);
        self.ready.notify_one();
    }

    /// Adds a frame, waiting for room instead of dropping (a recording played as fast as the
    /// pipeline takes it). Gives up, returning false, if the queue is closed meanwhile.
    pub fn push_wait(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        while s.frames.len() >= self.capacity && !s.closed {
            s = self
                .room
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if s.closed {
            return false;
        }
        self.enqueue(s, frame);
        true
    }

    /// The oldest frame, waiting up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Popped {
        let mut s = self.lock();
        if s.frames.is_empty() && !s.closed {
            s = self.ready.wait_timeout(s, timeout).unwrap_or_else(|e| e.into_inner()).0;
        }
        match s.frames.pop_front() {
            Some(f) => {
                drop(s);
                self.room.notify_one();
                Popped::Frame(f)
            }
            None if s.closed => Popped::Closed,
            None => Popped::Empty,
        }
    }

    /// No more frames will come; the consumer drains what is left.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The most frames ever waiting at once (never more than the capacity).
    pub fn high_water(&self) -> usize {
        self.lock().high_water
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        let mut f = Frame::new(image::RgbImage::new(1, 1), "t");
        f.seq = seq;
        f
    }

    #[test]
    fn full_queue_drops_the_oldest_and_drains_after_close() {
        let q = FrameQueue::new(2);
        assert!(!q.push(frame(0)));
        assert!(!q.push(frame(1)));
        assert!(q.push(frame(2)));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.high_water(), 2);
        q.close();
        let t = Duration::from_millis(1);
        let seq = |p: Popped| match p {
            Popped::Frame(f) => f.seq,
            _ => panic!("expected a frame"),
        };
        assert_eq!(seq(q.pop(t)), 1);
        assert_eq!(seq(q.pop(t)), 2);
        assert!(matches!(q.pop(t), Popped::Closed));
    }
}
