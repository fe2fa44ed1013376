//! The fuzz input read front to back, shared by the harnesses that interpret their input as a
//! short program; reads past the end yield nothing.

/// The input, read front to back; reads past the end yield nothing.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

// Not every harness reads every shape.
#[allow(dead_code)]
impl Input<'_> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    pub(crate) fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    /// A length byte, then that many bytes.
    pub(crate) fn chunk(&mut self) -> Option<Vec<u8>> {
        let n = usize::from(self.byte()?);
        Some(self.take(n).to_vec())
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4).try_into().ok()?))
    }
}
