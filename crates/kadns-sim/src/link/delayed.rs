//! A one-way queue whose items become visible at their arrival time: the
//! wire of the native muxer ([`super::muxer`]). The sender stamps each item
//! with when it arrives; the receiver sees it no earlier (it sleeps on a
//! tokio timer until then).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

struct Queue<T> {
    items: VecDeque<(Instant, T)>,
    waker: Option<Waker>,
    /// The receiver is gone: sends fail.
    closed: bool,
}

/// The shared queue (crate-visible so a muxer can reset its streams).
pub(crate) struct Shared<T>(Mutex<Queue<T>>);

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `item`, visible at `at`, and wakes the receiver; gives the
    /// item back when the receiver is gone.
    pub(crate) fn push(&self, at: Instant, item: T) -> Result<(), T> {
        let waker = {
            let mut q = self.lock();
            if q.closed {
                return Err(item);
            }
            q.items.push_back((at, item));
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

/// The writing end. Cheap to clone.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Sends `item`, to arrive at `at`; gives it back when the receiver is
    /// gone. Arrival times must not decrease (the caller stamps them from
    /// one lane clock).
    pub(crate) fn send(&self, at: Instant, item: T) -> Result<(), T> {
        self.shared.push(at, item)
    }
}

/// The reading end.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// A connected sender and receiver.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared(Mutex::new(Queue {
        items: VecDeque::new(),
        waker: None,
        closed: false,
    })));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            sleep: None,
        },
    )
}

impl<T> Receiver<T> {
    /// The next item once it has arrived; `Pending` until then (the task is
    /// woken at its arrival time or when an item is sent into an empty
    /// queue).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        loop {
            let due = {
                let mut q = self.shared.lock();
                match q.items.front() {
                    None => {
                        q.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    Some((at, _)) if *at <= Instant::now() => {
                        if let Some((_, item)) = q.items.pop_front() {
                            return Poll::Ready(item);
                        }
                        continue;
                    }
                    Some((at, _)) => *at,
                }
            };
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(due),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(due))),
            }
            if let Some(sleep) = &mut self.sleep
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
        }
    }

    /// A weak reference to the queue, to push into it from elsewhere.
    pub(crate) fn downgrade(&self) -> Weak<Shared<T>> {
        Arc::downgrade(&self.shared)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut q = self.shared.lock();
            q.closed = true;
            std::mem::take(&mut q.items)
        };
        // Dropped outside the lock: an item may itself send on drop.
        drop(items);
    }
}
