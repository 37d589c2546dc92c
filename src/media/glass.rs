//! The glass stamp: the test source draws the wall-clock time of each frame
//! into the picture, so a viewer on the same machine reads it back and
//! measures glass-to-glass latency (capture → encode → network → decode →
//! screen). One row of 34 square blocks from the top-left corner, side
//! `max(4, width / 40)` px: white, black (the reader's calibration), then the
//! 32 bits of the time in ms since the Unix epoch modulo 2^32, most
//! significant first, white for 1. Luma 235 and 16; chroma grey under them.
//! The comparators in `bench/` stamp the same way. Pure: the time comes in.

/// Blocks in the row: two for calibration, 32 for the time.
const BLOCKS: usize = 34;
/// Luma of a white block (video range).
const WHITE: u8 = 235;
/// Luma of a black block (video range).
const BLACK: u8 = 16;
/// Neutral chroma.
const GREY: u8 = 128;

/// Side of a block in pixels for a picture `width` wide.
pub(crate) fn block_side(width: usize) -> usize {
    (width / 40).max(4)
}

/// One plane of a picture: its bytes, and the bytes from one row to the next.
pub(crate) struct Plane<'a> {
    /// The plane's bytes.
    pub(crate) data: &'a mut [u8],
    /// Bytes per row.
    pub(crate) stride: usize,
}

/// Draws `millis` (the capture time, ms since the epoch, modulo 2^32) into
/// an I420 picture `width` × `height`; a picture too small is left alone.
pub(crate) fn stamp<'a>(
    y: Plane<'a>,
    mut u: Plane<'a>,
    mut v: Plane<'a>,
    (width, height): (usize, usize),
    millis: u32,
) {
    let side = block_side(width);
    if BLOCKS * side > width || side > height {
        return;
    }
    for block in 0..BLOCKS {
        let white = match block {
            0 => true,
            1 => false,
            bit => millis >> (BLOCKS - 1 - bit) & 1 == 1,
        };
        let luma = if white { WHITE } else { BLACK };
        for row in 0..side {
            let start = row * y.stride + block * side;
            y.data[start..start + side].fill(luma);
        }
        for chroma in [&mut u, &mut v] {
            for row in 0..side / 2 {
                let start = row * chroma.stride + block * side / 2;
                chroma.data[start..start + side / 2].fill(GREY);
            }
        }
    }
}

/// Reads the stamp back from a luma plane (what a viewer does from its
/// canvas); `None` when the calibration blocks are not there.
#[cfg(test)]
pub(crate) fn read(y: &[u8], stride: usize, width: usize) -> Option<u32> {
    let side = block_side(width);
    let centre = |block: usize| y[(side / 2) * stride + block * side + side / 2];
    let (white, black) = (u16::from(centre(0)), u16::from(centre(1)));
    if white < black + 100 {
        return None;
    }
    let threshold = (white + black) / 2;
    Some((2..BLOCKS).fold(0, |value, block| {
        value << 1 | u32::from(u16::from(centre(block)) > threshold)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_at_every_size() {
        for (width, height) in [(1280, 720), (640, 360), (320, 240), (160, 120)] {
            let stride = width + 32;
            let mut y = vec![80u8; stride * height];
            let mut u = vec![60u8; stride / 2 * height / 2];
            let mut v = vec![200u8; stride / 2 * height / 2];
            for millis in [0, 1, 0x8000_0001, u32::MAX, 1_764_615_000] {
                stamp(
                    Plane {
                        data: &mut y,
                        stride,
                    },
                    Plane {
                        data: &mut u,
                        stride: stride / 2,
                    },
                    Plane {
                        data: &mut v,
                        stride: stride / 2,
                    },
                    (width, height),
                    millis,
                );
                assert_eq!(read(&y, stride, width), Some(millis), "{width}x{height}");
            }
            assert_eq!(u[0], GREY);
            assert_eq!(v[0], GREY);
            assert_eq!(y[stride * (height - 1)], 80, "below the row is untouched");
        }
    }

    #[test]
    fn a_picture_too_small_is_left_alone_and_reads_as_none() {
        let mut y = vec![80u8; 100 * 2];
        let (mut u, mut v) = (vec![0u8; 50], vec![0u8; 50]);
        stamp(
            Plane {
                data: &mut y,
                stride: 100,
            },
            Plane {
                data: &mut u,
                stride: 50,
            },
            Plane {
                data: &mut v,
                stride: 50,
            },
            (100, 2),
            7,
        );
        assert!(y.iter().all(|&p| p == 80));
        let plain = vec![80u8; 1280 * 720];
        assert_eq!(read(&plain, 1280, 1280), None);
    }
}
