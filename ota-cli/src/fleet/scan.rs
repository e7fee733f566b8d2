//! Cutting a JSON array of profiles, or JSON Lines, into its elements, block by block.
//!
//! The file is read in blocks of [`BLOCK`] bytes; each element is found by serde_json on the
//! buffered slice (a borrowed [`RawValue`], so nothing is copied or built), and handed out as
//! a range of the buffer. The punctuation between elements (`[`, `,`, `]` and whitespace) is
//! read here. What is kept is one block and the element being cut, at most
//! `max_one` bytes; a longer element is refused as soon as it passes that bound. Errors give
//! the line and column in the file, as serde_json's do.

use std::io::{self, Read};
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The bytes read at a time.
pub const BLOCK: usize = 1 << 20;

/// Why the scanning stopped.
pub enum Fault {
    /// Reading the file failed (or its reader refused to read further).
    Io(io::Error),
    /// The file is not a JSON array or JSON Lines; the message gives the line and column.
    Syntax(String),
    /// An element exceeds the bound.
    TooLarge(String),
}

/// Where the scanner is in a JSON array.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the `[`.
    Open,
    /// After the `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    Next,
    /// After a `,`: an element.
    Comma,
    /// After the `]`: only whitespace.
    Done,
}

/// The elements of a JSON array (or of JSON Lines) read from `R`.
pub struct Scanner<R> {
    src: R,
    buf: Vec<u8>,
    /// The next byte to look at in `buf`.
    pos: usize,
    eof: bool,
    /// The line (from 1) and column (from 0) of `buf[0]` in the file.
    line: u64,
    col: u64,
    /// A JSON array (else JSON Lines).
    array: bool,
    state: State,
    max_one: usize,
    /// Elements handed out.
    count: usize,
}

impl<R: Read> Scanner<R> {
    /// A scanner of `src`, which holds elements of at most `max_one` bytes; skips a UTF-8
    /// byte-order mark.
    pub fn new(src: R, max_one: usize) -> Self {
        Scanner {
            src,
            buf: Vec::with_capacity(BLOCK),
            pos: 0,
            eof: false,
            line: 1,
            col: 0,
            array: true,
            state: State::Open,
            max_one,
            count: 0,
        }
    }

    /// The first byte that is not whitespace (after a byte-order mark), not consumed.
    pub fn first_byte(&mut self) -> Result<Option<u8>, Fault> {
        while self.buf.len() < 3 && !self.eof {
            self.fill()?;
        }
        if self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.pos = 3;
        }
        self.peek()
    }

    /// Reads JSON Lines (any whitespace between the values) instead of an array.
    pub fn lines(&mut self) {
        self.array = false;
    }

    /// The reader.
    pub fn source(&self) -> &R {
        &self.src
    }

    /// What is left unread, buffered bytes first (for a document read whole).
    pub fn into_rest(self) -> io::Chain<io::Cursor<Vec<u8>>, R> {
        let mut buf = self.buf;
        buf.drain(..self.pos);
        io::Cursor::new(buf).chain(self.src)
    }

    /// The next element's bytes, as a range of [`Scanner::bytes`], or `None` at the end.
    pub fn next(&mut self) -> Result<Option<Range<usize>>, Fault> {
        loop {
            let Some(b) = self.peek()? else {
                return match self.state {
                    _ if !self.array => Ok(None),
                    State::Done => Ok(None),
                    State::Open => Err(self.syntax("EOF while parsing a value", 0)),
                    _ => Err(self.syntax("EOF while parsing a list", 0)),
                };
            };
            if !self.array {
                return self.value().map(Some);
            }
            match (self.state, b) {
                (State::Open, b'[') => {
                    self.pos += 1;
                    self.state = State::First;
                }
                (State::Open, _) => return Err(self.syntax("expected `[`", 1)),
                (State::First | State::Next, b']') => {
                    self.pos += 1;
                    self.state = State::Done;
                }
                (State::Comma, b']') => return Err(self.syntax("trailing comma", 1)),
                (State::First | State::Comma, _) => {
                    let r = self.value()?;
                    self.state = State::Next;
                    return Ok(Some(r));
                }
                (State::Next, b',') => {
                    self.pos += 1;
                    self.state = State::Comma;
                }
                (State::Next, _) => return Err(self.syntax("expected `,` or `]`", 1)),
                (State::Done, _) => return Err(self.syntax("trailing characters", 1)),
            }
        }
    }

    /// The buffer the ranges [`Scanner::next`] gives point into (valid until its next call).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Cuts the element at `pos`.
    fn value(&mut self) -> Result<Range<usize>, Fault> {
        loop {
            let available = self.buf.len() - self.pos;
            let parsed = {
                let slice = &self.buf[self.pos..];
                let mut de = serde_json::Deserializer::from_slice(slice);
                <&RawValue>::deserialize(&mut de).map(|raw| {
                    let start = raw.get().as_ptr() as usize - slice.as_ptr() as usize;
                    (start, start + raw.get().len())
                })
            };
            match parsed {
                Ok((start, end)) => {
                    // A number cut by the block's end would look whole: read on.
                    if end == available && !self.eof {
                        self.more()?;
                        continue;
                    }
                    if end - start > self.max_one {
                        return Err(Fault::TooLarge(format!(
                            "[{}]: a profile of {} bytes exceeds the limit of {} bytes",
                            self.count,
                            end - start,
                            self.max_one
                        )));
                    }
                    let r = self.pos + start..self.pos + end;
                    self.pos += end;
                    self.count += 1;
                    return Ok(r);
                }
                Err(e) if e.classify() == serde_json::error::Category::Eof && !self.eof => {
                    if available > self.max_one {
                        return Err(Fault::TooLarge(format!(
                            "[{}]: a profile exceeds the limit of {} bytes",
                            self.count, self.max_one
                        )));
                    }
                    self.more()?;
                }
                Err(e) => {
                    let (line, col) = self.position(self.pos);
                    let (line, col) = if e.line() <= 1 {
                        (line, col + e.column() as u64)
                    } else {
                        (line + e.line() as u64 - 1, e.column() as u64)
                    };
                    let message = crate::doc::strip_positions(&e.to_string());
                    return Err(Fault::Syntax(format!(
                        "{message} at line {line} column {col}"
                    )));
                }
            }
        }
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Fault> {
        loop {
            match self.buf[self.pos..]
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                Some(i) => {
                    self.pos += i;
                    return Ok(Some(self.buf[self.pos]));
                }
                None if self.eof => {
                    self.pos = self.buf.len();
                    return Ok(None);
                }
                None => {
                    self.pos = self.buf.len();
                    self.more()?;
                }
            }
        }
    }

    /// Drops what was consumed and reads another block (or finds the end).
    fn more(&mut self) -> Result<(), Fault> {
        let (line, col) = self.position(self.pos);
        (self.line, self.col) = (line, col);
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.fill()
    }

    /// Reads another block onto the buffer's end.
    fn fill(&mut self) -> Result<(), Fault> {
        let n = (&mut self.src)
            .take(BLOCK as u64)
            .read_to_end(&mut self.buf)
            .map_err(Fault::Io)?;
        self.eof = n == 0;
        Ok(())
    }

    /// The line and column (as serde_json counts them) of `buf[at]`.
    fn position(&self, at: usize) -> (u64, u64) {
        let before = &self.buf[..at];
        match before.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                let lines = before.iter().filter(|&&b| b == b'\n').count() as u64;
                (self.line + lines, (at - last - 1) as u64)
            }
            None => (self.line, self.col + at as u64),
        }
    }

    /// A syntax error at `pos`, its column counted as serde_json does (the byte at `pos`
    /// counts, `past` 1; at the end, `past` 0).
    fn syntax(&self, what: &str, past: u64) -> Fault {
        let (line, col) = self.position(self.pos);
        Fault::Syntax(format!("{what} at line {line} column {}", col + past))
    }
}
