//! Counting CSV records without parsing them, the way pyarrow's reader delimits them.
//!
//! RFC 4180 quoting toggles on every `"` (an escaped `""` toggles twice); a record
//! ends at LF, CR or CRLF outside quotes; empty lines are not records. One pass with
//! a four-field state, in blocks, so memory stays bounded.

use std::fs::File;
use std::path::Path;

use pyo3::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::pool::run_in;

const BLOCK: usize = 8 << 20;

/// Where the scanner is within a field.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Field {
    /// At the start of a field: a `"` here opens a quoted value.
    #[default]
    Start,
    /// Inside an unquoted value (a `"` here is an ordinary byte).
    Plain,
    /// Inside a quoted value.
    Quoted,
    /// Just saw a `"` inside a quoted value: `""` is an escaped quote, anything else
    /// closed the quotes.
    QuoteInQuoted,
}

/// The record-counting state carried from one block to the next.
#[derive(Clone, Copy, Default)]
struct Scan {
    records: u64,
    field: Field,
    /// The current line has content (so its terminator ends a record).
    content: bool,
    /// The previous byte was a CR outside quotes (so an LF now completes CRLF).
    after_cr: bool,
}

impl Scan {
    /// Records as pyarrow delimits them (with `newlines_in_values=True`): a `"` opens
    /// quoting only at the start of a field; lines end at LF, CR or CRLF outside quoted
    /// values; empty lines are not records.
    ///
    /// The rules of [`Scan::feed_bytewise`], at memchr speed: inside a quoted value the
    /// scan jumps to the next `"`; inside an unquoted value to the next `"`, LF or CR
    /// (a `"` there opens quoting only right after a comma, and every byte passed over
    /// is content).
    fn feed(&mut self, data: &[u8]) {
        let Scan {
            mut records,
            mut field,
            mut content,
            mut after_cr,
        } = *self;
        let mut i = 0;
        while i < data.len() {
            match field {
                Field::Quoted => match memchr::memchr(b'"', &data[i..]) {
                    Some(k) => {
                        field = Field::QuoteInQuoted;
                        i += k + 1;
                    }
                    None => i = data.len(),
                },
                Field::QuoteInQuoted if data[i] == b'"' => {
                    field = Field::Quoted;
                    i += 1;
                }
                Field::Plain | Field::QuoteInQuoted => {
                    // Inside an unquoted value (or just after a closing quote, which
                    // behaves the same): ordinary bytes up to the next quote or line end.
                    let rest = &data[i..];
                    let k = memchr::memchr3(b'"', b'\n', b'\r', rest).unwrap_or(rest.len());
                    if k > 0 {
                        content = true;
                        after_cr = false;
                        field = if rest[k - 1] == b',' {
                            Field::Start
                        } else {
                            Field::Plain
                        };
                    } else if field == Field::QuoteInQuoted {
                        field = Field::Plain;
                    }
                    i += k;
                    if i < data.len() {
                        if data[i] == b'"' {
                            // Opens quoting after a comma; an ordinary byte anywhere else.
                            field = if field == Field::Start {
                                Field::Quoted
                            } else {
                                Field::Plain
                            };
                            content = true;
                            after_cr = false;
                            i += 1;
                        } else {
                            field = Field::Start; // a line end: the next arm ends the line
                        }
                    }
                }
                Field::Start => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' | b'\r' => {
                            if !(b == b'\n' && after_cr) && content {
                                records += 1;
                            }
                            content = false;
                            after_cr = b == b'\r';
                            continue;
                        }
                        b',' => {}
                        b'"' => field = Field::Quoted,
                        _ => field = Field::Plain,
                    }
                    content = true;
                    after_cr = false;
                }
            }
        }
        *self = Scan {
            records,
            field,
            content,
            after_cr,
        };
    }

    /// Records as pyarrow delimits them (with `newlines_in_values=True`): a `"` opens
    /// quoting only at the start of a field; lines end at LF, CR or CRLF outside quoted
    /// values; empty lines are not records.
    #[cfg(test)]
    fn feed_bytewise(&mut self, data: &[u8]) {
        let Scan {
            mut records,
            mut field,
            mut content,
            mut after_cr,
        } = *self;
        for &b in data {
            if field == Field::Quoted {
                if b == b'"' {
                    field = Field::QuoteInQuoted;
                }
                continue;
            }
            if field == Field::QuoteInQuoted {
                if b == b'"' {
                    field = Field::Quoted;
                    continue;
                }
                field = Field::Plain;
            }
            match b {
                b'\n' | b'\r' => {
                    if !(b == b'\n' && after_cr) && content {
                        records += 1;
                    }
                    content = false;
                    after_cr = b == b'\r';
                    field = Field::Start;
                    continue;
                }
                b',' => field = Field::Start,
                b'"' if field == Field::Start => field = Field::Quoted,
                _ => {
                    if field == Field::Start {
                        field = Field::Plain;
                    }
                }
            }
            content = true;
            after_cr = false;
        }
        *self = Scan {
            records,
            field,
            content,
            after_cr,
        };
    }

    fn finish(self) -> u64 {
        self.records + u64::from(self.content)
    }
}

/// Records (non-empty lines outside quotes) in a CSV file, the header included.
pub fn count_records(path: &Path) -> CoreResult<u64> {
    let mut file = File::open(path).map_err(|e| CoreError::from_io(e, path))?;
    let mut buf = vec![0u8; BLOCK];
    let mut scan = Scan::default();
    loop {
        let n =
            std::io::Read::read(&mut file, &mut buf).map_err(|e| CoreError::from_io(e, path))?;
        if n == 0 {
            break;
        }
        scan.feed(&buf[..n]);
    }
    Ok(scan.finish())
}

/// Lines of a CSV file outside double quotes (records, the header included).
#[pyfunction]
#[pyo3(signature = (path, threads=0))]
pub fn count_csv_records(
    py: Python<'_>,
    path: std::path::PathBuf,
    threads: usize,
) -> PyResult<u64> {
    Ok(py.detach(|| run_in(threads, || count_records(&path)))?)
}

/// Records that end (at a line end outside quotes) within `data`, which starts at a
/// record boundary: the rules of [`count_records`], without counting a last record
/// the bytes leave unfinished. The schema inference asks whether a CSV's first block
/// holds its header and one whole row (reprocas.tabular.inspect).
#[pyfunction]
pub fn csv_complete_records(data: &[u8]) -> u64 {
    let mut scan = Scan::default();
    scan.feed(data);
    scan.records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(data: &[u8]) -> u64 {
        let mut s = Scan::default();
        // Split anywhere: the state carries over.
        let mid = data.len() / 2;
        s.feed(&data[..mid]);
        s.feed(&data[mid..]);
        s.finish()
    }

    /// A small xorshift generator: CSV-ish bytes from a few interesting ones.
    fn noise(seed: u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn fast_scan_equals_bytewise_scan_anywhere_split() {
        let alphabets: [&[u8]; 4] = [
            b"a,\"\n\r",
            b"ab,,\"\"\n",
            b"aaaaaaa,\"\n",
            b"abcdefgh,,\"\r\n\n",
        ];
        for seed in 1..400u64 {
            let alphabet = alphabets[(seed % 4) as usize];
            let data = noise(seed, 1 + (seed as usize * 37) % 3000, alphabet);
            let mut reference = Scan::default();
            reference.feed_bytewise(&data);
            let split = (seed as usize * 101) % (data.len() + 1);
            let mut fast = Scan::default();
            fast.feed(&data[..split]);
            let mid = fast;
            fast.feed(&data[split..]);
            let mut bytewise_mid = Scan::default();
            bytewise_mid.feed_bytewise(&data[..split]);
            assert_eq!(
                mid.records, bytewise_mid.records,
                "seed {seed} at the split"
            );
            assert!(
                mid.field == bytewise_mid.field,
                "seed {seed}: field state at the split"
            );
            assert_eq!(
                mid.content, bytewise_mid.content,
                "seed {seed}: content at the split"
            );
            assert_eq!(
                mid.after_cr, bytewise_mid.after_cr,
                "seed {seed}: CR at the split"
            );
            assert_eq!(fast.finish(), reference.finish(), "seed {seed}");
        }
    }

    #[test]
    fn complete_records_leave_out_an_unfinished_one() {
        assert_eq!(csv_complete_records(b"a,b\n1,2\n"), 2);
        assert_eq!(csv_complete_records(b"a,b\n1,2"), 1);
        assert_eq!(csv_complete_records(b"a,b\n1,\"x\ny\n"), 1);
        assert_eq!(csv_complete_records(b"a,b\r\n\r\n1,2\r\n"), 2);
    }

    #[test]
    fn records_like_pyarrow() {
        assert_eq!(count(b"a,b\n1,\"x\ny\"\n2,\"\"\"q\"\"\"\n"), 3);
        assert_eq!(count(b"a,b\r1,2\r3,4\r"), 3);
        assert_eq!(count(b"a,b\r\n1,2\r\n\r\n3,4"), 3);
        assert_eq!(count(b"a,b\n\n\n1,2\n"), 2);
        assert_eq!(count(b""), 0);
        // A quote inside an unquoted value is an ordinary byte.
        assert_eq!(count(b"a,b\nx\"y,2\n3,4\n"), 3);
        assert_eq!(count(b"a,b\n\"q\"\"x\ny\",2\n"), 2);
    }
}
