//! Zips made by someone else: read within limits on the number of entries, on what each entry and the
//! whole archive unpack to, and on how much an entry may grow from its compressed size. A zip bomb (a
//! kilobyte that inflates to gigabytes) is refused when it passes a limit, having cost at most that
//! limit in memory and time; entries are read one at a time, so nothing unpacks in full before it is
//! checked.

use std::io::{Cursor, Read};

use zip::ZipArchive;

/// What an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Most entries (files and folders) in the directory.
    pub max_entries: usize,
    /// Most bytes one entry unpacks to.
    pub max_entry_bytes: u64,
    /// Most bytes all entries read together unpack to.
    pub max_total_bytes: u64,
    /// Most an entry may grow from its compressed size, beyond its first [`ZipLimits::RATIO_FREE_BYTES`].
    pub max_ratio: u64,
}

impl ZipLimits {
    /// Bytes any entry may unpack to whatever its ratio (small files of repeated text compress a lot).
    pub const RATIO_FREE_BYTES: u64 = 1 << 20;

    /// Zipped bank statements (CAMT): a few files of at most tens of megabytes of XML.
    pub const STATEMENTS: ZipLimits =
        ZipLimits { max_entries: 256, max_entry_bytes: 32 << 20, max_total_bytes: 64 << 20, max_ratio: 200 };

    /// The most one entry of `compressed` bytes may unpack to.
    fn entry_cap(&self, compressed: u64, total_left: u64) -> u64 {
        let by_ratio = compressed.saturating_mul(self.max_ratio).max(Self::RATIO_FREE_BYTES);
        by_ratio.min(self.max_entry_bytes).min(total_left)
    }
}

/// Why an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// Not a zip, or a broken one.
    #[error("unreadable zip: {0}")]
    Unreadable(String),
    /// Beyond a limit.
    #[error("{0}")]
    Limit(String),
    /// No such entry.
    #[error("the zip has no {0}")]
    Missing(String),
}

/// An archive being read within [`ZipLimits`].
pub struct SafeZip<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    limits: ZipLimits,
    unpacked: u64,
}

impl<'a> SafeZip<'a> {
    /// Open `bytes`, refusing a directory with too many entries.
    pub fn open(bytes: &'a [u8], limits: ZipLimits) -> Result<SafeZip<'a>, ZipError> {
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| ZipError::Unreadable(e.to_string()))?;
        if archive.len() > limits.max_entries {
            return Err(ZipError::Limit(format!(
                "the zip holds {} entries; at most {} are read",
                archive.len(),
                limits.max_entries
            )));
        }
        Ok(SafeZip { archive, limits, unpacked: 0 })
    }

    /// The names of the entries, in directory order.
    pub fn names(&self) -> Vec<String> {
        self.archive.file_names().filter_map(Result::ok).map(|n| n.into_owned()).collect()
    }

    /// Read entry `name` whole, within the limits.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, ZipError> {
        let mut out = Vec::new();
        self.with_reader(name, |r| r.read_to_end(&mut out).map(|_| ()))?;
        Ok(out)
    }

    /// Hand entry `name` to `f` as a reader that fails (with [`ZipError::Limit`] as the outcome) at the
    /// first byte past the limits: for streaming parsers, so the entry is never held whole.
    pub fn with_reader<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, ZipError> {
        let total_left = self.limits.max_total_bytes.saturating_sub(self.unpacked);
        let limits = self.limits;
        let mut file = self.archive.by_name(name).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => ZipError::Missing(name.to_owned()),
            e => ZipError::Unreadable(format!("{name}: {e}")),
        })?;
        let cap = limits.entry_cap(file.compressed_size(), total_left);
        let mut bounded = Bounded { inner: &mut file, left: cap, over: false };
        let result = f(&mut bounded);
        let (over, read) = (bounded.over, cap - bounded.left);
        self.unpacked += read;
        if over {
            let why = if cap == total_left {
                format!("the zip unpacks to more than {} MiB in all", limits.max_total_bytes >> 20)
            } else if cap == limits.max_entry_bytes {
                format!("{name} unpacks to more than {} MiB", limits.max_entry_bytes >> 20)
            } else {
                format!("{name} is compressed more than {}:1, which only zip bombs are", limits.max_ratio)
            };
            return Err(ZipError::Limit(why));
        }
        result.map_err(|e| ZipError::Unreadable(format!("{name}: {e}")))
    }
}

/// A reader that fails past `left` bytes, remembering that it did.
struct Bounded<'r, R: Read> {
    inner: &'r mut R,
    left: u64,
    over: bool,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a file that ends exactly at the limit from one that goes on.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.over = true;
            return Err(std::io::Error::other("the zip entry is larger than allowed"));
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn an_entry_compressed_like_a_bomb_is_refused_after_reading_at_most_its_cap() {
        // 64 MB of zeros deflates to about 64 KB: 1000:1.
        let bomb = zip_of(&[("a.xml", vec![0u8; 64 << 20])]);
        assert!(bomb.len() < 100 << 10);
        let mut z = SafeZip::open(&bomb, ZipLimits::STATEMENTS).unwrap();
        let err = z.read("a.xml").unwrap_err();
        assert!(matches!(err, ZipError::Limit(ref m) if m.contains("compressed more than 200:1")), "{err}");
        assert!(z.unpacked <= 200 * bomb.len() as u64 + 1);
    }

    #[test]
    fn the_total_and_the_entry_count_are_capped() {
        let limits = ZipLimits { max_entries: 3, max_entry_bytes: 1 << 20, max_total_bytes: 3 << 20, max_ratio: 2000 };
        let many = zip_of(&[("a", vec![1]), ("b", vec![2]), ("c", vec![3]), ("d", vec![4])]);
        assert!(matches!(SafeZip::open(&many, limits), Err(ZipError::Limit(m)) if m.contains("4 entries")));
        let big: Vec<(&str, Vec<u8>)> = ["a", "b", "c"].iter().map(|n| (*n, vec![7u8; 1 << 20])).collect();
        let ok = zip_of(&big);
        let mut z = SafeZip::open(&ok, limits).unwrap();
        for n in ["a", "b", "c"] {
            assert_eq!(z.read(n).unwrap().len(), 1 << 20, "exactly at the entry cap is fine");
        }
        let over = zip_of(&[("a", vec![7u8; (1 << 20) + 1])]);
        let err = SafeZip::open(&over, limits).unwrap().read("a").unwrap_err();
        assert!(matches!(err, ZipError::Limit(ref m) if m.contains("more than 1 MiB")), "{err}");
        let four: Vec<(&str, Vec<u8>)> = ["a", "b", "c"].iter().map(|n| (*n, vec![7u8; 1 << 20])).collect();
        let four = zip_of(&four);
        let mut z = SafeZip::open(&four, ZipLimits { max_total_bytes: 2 << 20, ..limits }).unwrap();
        z.read("a").unwrap();
        z.read("b").unwrap();
        assert!(matches!(z.read("c"), Err(ZipError::Limit(m)) if m.contains("in all")));
    }

    #[test]
    fn a_missing_entry_and_junk_are_told_apart() {
        let z = zip_of(&[("a", vec![1])]);
        assert_eq!(SafeZip::open(&z, ZipLimits::STATEMENTS).unwrap().read("b"), Err(ZipError::Missing("b".into())));
        assert!(matches!(SafeZip::open(b"PK\x03\x04junk", ZipLimits::STATEMENTS), Err(ZipError::Unreadable(_))));
    }
}
