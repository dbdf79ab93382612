//! Reads records from the `EVENTS` ring buffer without busy polling.

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    /// Registers the ring buffer with the tokio reactor (needs a runtime).
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd and is moved into the AsyncFd, so
        // the fd stays open and unchanged for the AsyncFd's whole lifetime.
        let ring =
            unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
        Ok(Self { ring })
    }

    /// Waits until records are available, then hands every available record
    /// to `handle`. Returns the number of records handled.
    pub async fn read_batch(&mut self, mut handle: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut handled = 0;
        while let Some(item) = ring.next() {
            handle(&item);
            handled += 1;
        }
        guard.clear_ready();
        Ok(handled)
    }
}
