//! A frame in a buffer with headroom: the unit every stage works on in place.
//!
//! Backends hand the pipeline a [`Frame`] whose bytes start `HEADROOM` (or
//! more) bytes into the buffer, so encapsulation can prepend outer headers
//! without copying the packet.

/// Headroom every backend leaves in front of a received frame. Enough for the
/// largest encapsulation lbfwd emits (outer Ethernet 14 + IPv6 40 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14 = 84 bytes) with room to spare.
pub const HEADROOM: usize = 128;

/// A frame at `buf[head..head + len]`; the bytes before `head` are headroom.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// Wraps `buf` with the frame at `head..head + len`.
    ///
    /// # Panics
    /// If `head + len` exceeds the buffer (a backend bug, never packet data).
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Self {
        assert!(head + len <= buf.len(), "frame outside its buffer");
        Frame { buf, head, len }
    }

    /// Runs `f` on the frame moved out of `self` (an empty frame stands in
    /// meanwhile) and moves it back. For calls off the hot path: a frame
    /// whose address never reaches a function that is not inlined can live
    /// in registers on the hot path.
    #[inline(always)]
    pub fn detached<R>(&mut self, f: impl FnOnce(&mut Frame<'a>) -> R) -> R {
        let empty = Frame {
            buf: &mut [],
            head: 0,
            len: 0,
        };
        let mut moved = std::mem::replace(self, empty);
        let result = f(&mut moved);
        *self = moved;
        result
    }

    /// The frame's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The frame's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Offset of the first byte of the frame in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Length of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the frame holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free behind the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Moves the start of the frame by `delta` bytes: negative grows the frame
    /// into the headroom (prepend), positive drops bytes from its front.
    /// Returns false, changing nothing, when that leaves the buffer.
    #[inline]
    pub fn adjust_head(&mut self, delta: isize) -> bool {
        let new_head = self.head as isize + delta;
        let new_len = self.len as isize - delta;
        if new_head < 0 || new_len < 0 {
            return false;
        }
        self.head = new_head as usize;
        self.len = new_len as usize;
        true
    }

    /// Grows the frame into the headroom so that it starts `N` bytes before
    /// its byte `keep_from` (dropping the bytes in front of that one) and
    /// returns those first `N` bytes, to be filled with headers: one bounds
    /// check for what [`Frame::adjust_head`] and slicing `data_mut` would
    /// check in turn. `None`, changing nothing, when the headroom is too
    /// small or `keep_from` lies beyond the frame.
    #[inline]
    pub fn prepend_array<const N: usize>(&mut self, keep_from: usize) -> Option<&mut [u8; N]> {
        if keep_from > self.len {
            return None;
        }
        let start = (self.head + keep_from).checked_sub(N)?;
        let end = self.head + self.len;
        let h: &mut [u8; N] = self.buf.get_mut(start..start + N)?.try_into().ok()?;
        self.head = start;
        self.len = end - start;
        Some(h)
    }

    /// Sets the frame's length (truncate, or extend into the tailroom).
    /// Returns false, changing nothing, when that leaves the buffer.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.head + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }

    /// The whole buffer and the frame's position, for stages that write
    /// headers in front of the frame before moving its head.
    #[inline]
    pub fn raw_mut(&mut self) -> (&mut [u8], usize, usize) {
        (self.buf, self.head, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_trim_stay_inside_the_buffer() {
        let mut storage = [0u8; 64];
        let mut frame = Frame::new(&mut storage, 16, 32);
        assert!(frame.adjust_head(-16));
        assert_eq!((frame.head(), frame.len()), (0, 48));
        assert!(!frame.adjust_head(-1));
        assert!(frame.adjust_head(8));
        assert_eq!((frame.head(), frame.len(), frame.headroom()), (8, 40, 8));
        assert!(frame.set_len(56));
        assert!(!frame.set_len(57));
        assert_eq!(frame.tailroom(), 0);
        assert!(!frame.adjust_head(57));
    }

    #[test]
    fn detached_runs_on_the_moved_frame_and_moves_it_back() {
        let mut storage = [7u8; 32];
        let mut frame = Frame::new(&mut storage, 8, 16);
        let seen = frame.detached(|f| {
            assert!(f.adjust_head(-4));
            (f.head(), f.len())
        });
        assert_eq!(seen, (4, 20));
        assert_eq!(
            (frame.head(), frame.len(), frame.data()),
            (4, 20, &[7u8; 20][..])
        );
    }

    #[test]
    fn prepend_array_moves_the_head_or_nothing() {
        let mut storage: Vec<u8> = (0..64).collect();
        let mut frame = Frame::new(&mut storage, 16, 32);
        // 14 bytes of the frame replaced by 20 of headers: head 16 + 14 - 20.
        let h = frame.prepend_array::<20>(14).expect("room");
        assert_eq!(h[..], (10..30).collect::<Vec<u8>>()[..]);
        h.fill(0xee);
        assert_eq!((frame.head(), frame.len()), (10, 38));
        assert_eq!(frame.data()[20], 30);
        // Not enough headroom, or a keep_from beyond the frame: unchanged.
        assert!(frame.prepend_array::<11>(0).is_none());
        assert!(frame.prepend_array::<4>(39).is_none());
        assert_eq!((frame.head(), frame.len()), (10, 38));
        let h = frame.prepend_array::<10>(0).expect("exactly the headroom");
        assert_eq!(h.len(), 10);
        assert_eq!((frame.head(), frame.len()), (0, 48));
    }
}
