//! The pump for voice-tokio (feature `tokio`): `voice_tokio::OpusSender` is a [`FrameSink`].

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::pump::{FrameSink, SinkClosed};

/// Wakes the pump thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread, parking it until woken. `OpusSender::send` only waits on a
/// `tokio::sync::Notify`, which needs no runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

impl FrameSink for voice_tokio::OpusSender {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SinkClosed> {
        block_on(self.send(frame)).map_err(|_| SinkClosed)
    }

    fn try_send_frame(&mut self, frame: &[u8]) -> Result<bool, SinkClosed> {
        self.try_send(frame).map_err(|_| SinkClosed)
    }
}
