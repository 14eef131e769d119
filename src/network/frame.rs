//! Length-prefixed Kafka frames on a byte buffer.
//!
//! A frame is a big-endian `i32` size followed by that many bytes. An incomplete frame is a normal
//! state (`Ok(None)`), not an error; a negative or oversized length is a protocol violation after
//! which the connection must be closed, because the stream can no longer be resynchronised.

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: u32 },
    #[error("frame of {0} bytes is too small to hold a request header")]
    TooSmall(i32),
}

/// Smallest request: api key (2) + api version (2) + correlation id (4) + client id length (2).
const MIN_REQUEST: i32 = 10;

/// Takes one whole frame off the front of `buf`, if it is all there.
pub fn parse_frame(buf: &mut BytesMut, max: u32) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    if size as u32 > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if size < MIN_REQUEST {
        return Err(FrameError::TooSmall(size));
    }
    if buf.len() < 4 + size as usize {
        // Room is made as bytes arrive (see the listener), not for what the header claims: a
        // client announcing a large frame and sending nothing costs nothing.
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

/// Bytes still to come before the frame at the front of `buf` is whole (0 when it is, or when
/// not even its size has arrived).
pub fn missing_bytes(buf: &[u8]) -> usize {
    if buf.len() < 4 {
        return 0;
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]).max(0) as usize;
    (4 + size).saturating_sub(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn whole_partial_and_bad_frames() {
        let mut buf = BytesMut::new();
        buf.put_i32(12);
        buf.put_slice(&[1; 6]);
        assert_eq!(parse_frame(&mut buf, 100), Ok(None));
        buf.put_slice(&[2; 6]);
        buf.put_i32(10);
        let f = parse_frame(&mut buf, 100).expect("ok").expect("frame");
        assert_eq!(f.len(), 12);
        assert_eq!(buf.len(), 4);
        assert_eq!(parse_frame(&mut buf, 100), Ok(None));

        let mut bad = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(parse_frame(&mut bad, 100), Err(FrameError::Negative(-1)));
        let mut big = BytesMut::from(&(1000i32).to_be_bytes()[..]);
        assert!(matches!(
            parse_frame(&mut big, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut small = BytesMut::from(&(3i32).to_be_bytes()[..]);
        assert_eq!(parse_frame(&mut small, 100), Err(FrameError::TooSmall(3)));
    }
}
