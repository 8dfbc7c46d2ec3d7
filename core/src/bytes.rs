//! Reading and writing the nodes' stored records (`docs/storage.md`): fixed-width big-endian
//! integers and length-prefixed byte strings.
//!
//! [`Reader`] is strict and never panics: every read names the field it reads, a length that
//! runs past the end, text that is not UTF-8 and a flag other than 0 or 1 are errors, and
//! [`Reader::finish`] refuses trailing bytes. The writers refuse a value longer than its
//! length prefix can say instead of cutting it.

/// Reads a record's fields in order from a byte string.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// The next `n` bytes, as field `field`.
    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "{field}: truncated ({n} bytes needed at offset {}, {} left)",
                self.at,
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        self.at += n;
        Ok(head)
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self, field: &str) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian u32.
    pub fn u32(&mut self, field: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian u64.
    pub fn u64(&mut self, field: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A flag byte: 0 is false, 1 is true, anything else an error.
    pub fn flag(&mut self, field: &str) -> Result<bool, String> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{field}: flag must be 0 or 1, not {b}")),
        }
    }

    /// Bytes after a length of `prefix` (1, 2 or 4) bytes; a length above `max` is an error.
    pub fn bytes(&mut self, prefix: usize, max: usize, field: &str) -> Result<&'a [u8], String> {
        let n = match prefix {
            1 => usize::from(self.u8(field)?),
            2 => usize::from(self.u16(field)?),
            4 => usize::try_from(self.u32(field)?).unwrap_or(usize::MAX),
            _ => return Err(format!("{field}: length prefix of {prefix} bytes")),
        };
        if n > max {
            return Err(format!("{field}: {n} bytes, at most {max} allowed"));
        }
        self.take(n, field)
    }

    /// UTF-8 text after a length of `prefix` bytes, at most `max` bytes long.
    pub fn text(&mut self, prefix: usize, max: usize, field: &str) -> Result<&'a str, String> {
        let b = self.bytes(prefix, max, field)?;
        std::str::from_utf8(b).map_err(|e| format!("{field}: not UTF-8 ({e})"))
    }

    /// Succeeds if every byte was read.
    pub fn finish(self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} trailing bytes at offset {}",
                self.buf.len(),
                self.at
            ))
        }
    }
}

/// Appends `b` after its length as a `prefix`-byte (1, 2 or 4) big-endian integer; refuses a
/// value whose length does not fit the prefix.
pub fn put_bytes(out: &mut Vec<u8>, prefix: usize, b: &[u8], field: &str) -> Result<(), String> {
    let too_long = || {
        format!(
            "{field}: {} bytes do not fit a {prefix}-byte length",
            b.len()
        )
    };
    match prefix {
        1 => out.push(u8::try_from(b.len()).map_err(|_| too_long())?),
        2 => out.extend_from_slice(
            &u16::try_from(b.len())
                .map_err(|_| too_long())?
                .to_be_bytes(),
        ),
        4 => out.extend_from_slice(
            &u32::try_from(b.len())
                .map_err(|_| too_long())?
                .to_be_bytes(),
        ),
        _ => return Err(format!("{field}: length prefix of {prefix} bytes")),
    }
    out.extend_from_slice(b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_names_what_is_wrong() {
        let mut out = vec![1];
        out.extend_from_slice(&7u64.to_be_bytes());
        put_bytes(&mut out, 2, "héllo".as_bytes(), "s").unwrap();
        put_bytes(&mut out, 4, &[9; 3], "b").unwrap();
        let mut r = Reader::new(&out);
        assert!(r.flag("f").unwrap());
        assert_eq!(r.u64("n").unwrap(), 7);
        assert_eq!(r.text(2, 16, "s").unwrap(), "héllo");
        assert_eq!(r.bytes(4, 3, "b").unwrap(), &[9; 3]);
        r.finish().unwrap();

        let mut r = Reader::new(&out);
        r.u8("f").unwrap();
        r.u64("n").unwrap();
        assert!(r.text(2, 5, "s").unwrap_err().starts_with("s: 6 bytes"));
        assert!(Reader::new(&[2]).flag("f").unwrap_err().contains("0 or 1"));
        assert!(Reader::new(&[0, 5, 1])
            .bytes(2, 9, "x")
            .unwrap_err()
            .contains("truncated"));
        assert!(Reader::new(&[1, 0xff])
            .text(1, 9, "t")
            .unwrap_err()
            .contains("UTF-8"));
        assert!(Reader::new(&[0xff; 4])
            .bytes(4, 9, "x")
            .unwrap_err()
            .contains("at most"));
        let mut r = Reader::new(&[1, 2]);
        r.u8("a").unwrap();
        assert!(r.finish().unwrap_err().contains("trailing"));
        assert!(put_bytes(&mut Vec::new(), 1, &[0; 256], "x").is_err());
        assert!(put_bytes(&mut Vec::new(), 2, &[0; 65_536], "x").is_err());
    }
}
