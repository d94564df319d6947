//! The store's backup file format, for the `store` server (which writes and restores backups)
//! and for clients that save them (`pctl store snapshot save`), without the database.
//!
//! A backup is a body (the store's snapshot payload; opaque here) padded with zeros to a
//! multiple of [`BLOCK`] bytes, then the SHA-256 of the padded body ([`CHECKSUM_LEN`] bytes).
//! etcdctl recognises a checksum the same way: `size % 512 == 32`. There is no header.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The body is padded to a multiple of this many bytes.
pub const BLOCK: usize = 512;
/// Length of the SHA-256 trailer.
pub const CHECKSUM_LEN: usize = 32;

/// Why a backup was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Too short for a checksum, or the checksum does not match the body.
    #[error("snapshot file is corrupt: SHA-256 mismatch (is it a complete `snapshot save`?)")]
    Checksum,
    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("creating", "writing", ...).
        what: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Makes a backup of `body`: pads it to a multiple of [`BLOCK`] and appends its SHA-256.
pub fn seal(body: Vec<u8>) -> Vec<u8> {
    let mut sealer = Sealer::new(Vec::with_capacity(body.len() + BLOCK + CHECKSUM_LEN));
    // Writing into a Vec cannot fail.
    let _ = sealer.write_all(&body);
    sealer.finish().unwrap_or_default()
}

/// Writes a backup as its body is written: [`seal`] for a body streamed to `out` instead of
/// held in memory. [`Sealer::finish`] writes the padding and the checksum.
pub struct Sealer<W: Write> {
    out: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Sealer<W> {
    /// A backup written to `out`.
    pub fn new(out: W) -> Sealer<W> {
        Sealer {
            out,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Pads the body, appends its SHA-256 and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let pad = (BLOCK - (self.len % BLOCK as u64) as usize) % BLOCK;
        let zeros = [0u8; BLOCK];
        self.write_all(&zeros[..pad])?;
        let sum = self.hasher.finalize();
        self.out.write_all(&sum)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Checks a backup's SHA-256 and returns its body (with the padding, which decoders ignore).
pub fn open(bytes: &[u8]) -> Result<&[u8], BackupError> {
    if bytes.len() < CHECKSUM_LEN {
        return Err(BackupError::Checksum);
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err(BackupError::Checksum);
    }
    Ok(body)
}

/// Checks the SHA-256 of the backup in the file at `path`, reading it a chunk at a time;
/// returns the length of its body (the file without the checksum), for a reader that then
/// decodes the body from the file.
pub fn check_file(path: &Path) -> Result<u64, BackupError> {
    use std::io::Read;
    let mut file = File::open(path).map_err(io_err("opening", path))?;
    let mut checker = Checker::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(io_err("reading", path))?;
        if n == 0 {
            break;
        }
        checker.update(&chunk[..n]);
    }
    let body = checker.len().saturating_sub(CHECKSUM_LEN as u64);
    checker.finish()?;
    Ok(body)
}

/// Checks a backup as it streams by: everything but the last [`CHECKSUM_LEN`] bytes is hashed,
/// and those must be the hash.
#[derive(Default)]
pub struct Checker {
    hasher: Sha256,
    /// The last bytes seen, not hashed yet: the trailer if the stream ends here.
    tail: Vec<u8>,
    len: u64,
}

impl Checker {
    /// A checker at the start of a backup.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Feeds the next bytes of the backup.
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > CHECKSUM_LEN {
            let hashed = self.tail.len() - CHECKSUM_LEN;
            self.hasher.update(&self.tail[..hashed]);
            self.tail.drain(..hashed);
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes fed make a whole backup.
    pub fn finish(self) -> Result<(), BackupError> {
        if self.tail.len() < CHECKSUM_LEN || self.hasher.finalize().as_slice() != self.tail {
            return Err(BackupError::Checksum);
        }
        Ok(())
    }
}

/// Writes a backup as it arrives: into `<file>.part` beside the target, checked as it goes;
/// [`Writer::finish`] syncs it and renames it to the target once the checksum matches. So the
/// target is either absent or a whole, checked backup. Dropped unfinished, the part file is
/// removed.
pub struct Writer {
    target: PathBuf,
    part: PathBuf,
    file: Option<File>,
    check: Checker,
    /// Set once the part file became the target.
    done: bool,
}

impl Writer {
    /// Starts writing a backup to `target`.
    pub fn create(target: &Path) -> Result<Writer, BackupError> {
        let part = target.with_extension("part");
        let file = File::create(&part).map_err(io_err("creating", &part))?;
        Ok(Writer {
            target: target.to_path_buf(),
            part,
            file: Some(file),
            check: Checker::new(),
            done: false,
        })
    }

    /// Appends the next bytes of the backup.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BackupError> {
        self.check.update(chunk);
        if let Some(f) = &mut self.file {
            f.write_all(chunk).map_err(io_err("writing", &self.part))?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.check.len()
    }

    /// True before any byte was written.
    pub fn is_empty(&self) -> bool {
        self.check.is_empty()
    }

    /// Checks the whole backup, syncs it and moves it to the target; returns its size. On
    /// any failure the part file is removed and the target left as it was.
    pub fn finish(mut self) -> Result<u64, BackupError> {
        let len = self.check.len();
        std::mem::take(&mut self.check).finish()?;
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(io_err("syncing", &self.part))?;
        }
        std::fs::rename(&self.part, &self.target).map_err(io_err("renaming", &self.part))?;
        self.done = true;
        Ok(len)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Unfinished or failed: the part file goes.
        self.file = None;
        if !self.done {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_opens_and_any_change_is_refused() {
        for len in [0, 1, 511, 512, 513, 5000] {
            let body: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8 + 1).collect();
            let sealed = seal(body.clone());
            assert_eq!(sealed.len() % BLOCK, CHECKSUM_LEN);
            let opened = open(&sealed).expect("a sealed backup opens");
            assert_eq!(&opened[..len], &body[..]);
            assert!(opened[len..].iter().all(|b| *b == 0));
            let mut bad = sealed.clone();
            bad[0] ^= 1;
            assert!(matches!(open(&bad), Err(BackupError::Checksum)));
            assert!(matches!(
                open(&sealed[..sealed.len() - 1]),
                Err(BackupError::Checksum)
            ));
        }
        assert!(matches!(open(b"short"), Err(BackupError::Checksum)));
    }

    #[test]
    fn the_checker_agrees_with_open_whatever_the_chunks() {
        let sealed = seal(b"a backup body".repeat(100));
        for chunk in [1, 7, 32, 33, 512, 10_000] {
            let mut c = Checker::new();
            for part in sealed.chunks(chunk) {
                c.update(part);
            }
            assert_eq!(c.len(), sealed.len() as u64);
            c.finish().expect("whole backup");
            let mut c = Checker::new();
            for part in sealed[..sealed.len() - 3].chunks(chunk) {
                c.update(part);
            }
            assert!(matches!(c.finish(), Err(BackupError::Checksum)));
        }
        assert!(matches!(
            Checker::new().finish(),
            Err(BackupError::Checksum)
        ));
    }

    #[test]
    fn the_writer_renames_only_a_whole_backup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("backup.db");
        let sealed = seal(b"payload".to_vec());
        let mut w = Writer::create(&target).expect("create");
        for part in sealed.chunks(100) {
            w.write(part).expect("write");
        }
        assert_eq!(w.finish().expect("finish"), sealed.len() as u64);
        assert_eq!(std::fs::read(&target).expect("read"), sealed);
        assert!(!dir.path().join("backup.part").exists());

        let other = dir.path().join("other.db");
        let mut w = Writer::create(&other).expect("create");
        w.write(b"not a backup at all, too long to be only a checksum")
            .expect("write");
        assert!(matches!(w.finish(), Err(BackupError::Checksum)));
        assert!(!other.exists() && !dir.path().join("other.part").exists());
    }

    /// A body streamed through a Sealer in pieces: padded with zeros to whole blocks, then its
    /// SHA-256, which `open` checks.
    #[test]
    fn a_streamed_body_is_padded_and_summed() {
        for len in [0usize, 1, 511, 512, 513, 100_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut sealer = Sealer::new(Vec::new());
            for chunk in body.chunks(700) {
                sealer.write_all(chunk).unwrap();
            }
            let sealed = sealer.finish().unwrap();
            assert_eq!(sealed.len() % BLOCK, CHECKSUM_LEN, "{len} bytes");
            let opened = open(&sealed).expect("checksum");
            assert_eq!(&opened[..len], &body[..]);
            assert!(opened[len..].iter().all(|b| *b == 0));
            assert_eq!(opened.len(), len.div_ceil(BLOCK) * BLOCK);
        }
    }
}
