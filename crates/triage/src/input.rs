//! Reading input line by line without trusting line lengths: a line longer
//! than the limit is skipped as it streams by and reported, never held in
//! memory whole.

use std::io::{self, BufRead};

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes, without the newline (and without a `\r` before it).
    Text(&'a [u8]),
    /// The line was longer than the limit; its length in bytes.
    TooLong(usize),
}

/// Reads newline-separated records with a length bound.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Reads from `inner`, rejecting lines longer than `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max, buf: Vec::new(), number: 0 }
    }

    /// The next line and its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut total = 0usize;
        let mut saw_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if total + take <= self.max {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            total += take;
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.number += 1;
        if total > self.max {
            return Ok(Some((self.number, Line::TooLong(total))));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((self.number, Line::Text(&self.buf))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(u64, String)> {
        let mut reader = LineReader::new(io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        while let Ok(Some((n, line))) = reader.next_line() {
            out.push((
                n,
                match line {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::TooLong(len) => format!("<{len} bytes>"),
                },
            ));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_carriage_returns() {
        let got = lines(b"a\r\nbb\n\nccc", 10);
        assert_eq!(got, [(1, "a".into()), (2, "bb".into()), (3, "".into()), (4, "ccc".into())]);
    }

    #[test]
    fn a_huge_line_is_reported_with_its_length_and_the_next_line_survives() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&input, 10), [(1, "<100 bytes>".into()), (2, "ok".into())]);
    }
}
