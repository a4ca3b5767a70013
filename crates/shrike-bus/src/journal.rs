//! The on-disk journal behind a journaled [`LocalBus`](crate::LocalBus): one directory per topic
//! holding segment files, each named after the offset of its first record.
//!
//! Framing, per record: CRC-32 of the rest (`u32`), the record's offset (`i64`), key length and
//! payload length (`u32`s), all little-endian, then key and payload. Consumed segments are reused
//! (up to [`SPARES`]), so a segment may hold an earlier use's bytes after its last record; offsets
//! tell them apart. On open only the end of the newest segment may be damaged (an interrupted write
//! no sender was told had succeeded); damage anywhere else is an error, never silently skipped.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes before each record's key: CRC-32, offset, key length, payload length.
const HEADER: usize = 20;

/// Consumed segments kept per topic for reuse.
const SPARES: usize = 2;

/// Where a record's key and payload lie in its segment. Holds the file open, so a segment removed
/// from the directory stays readable while a record of it is still in use.
#[derive(Clone)]
pub(crate) struct Location {
    file: Arc<File>,
    /// Position of the key; the payload follows it.
    pos: u64,
    key_len: u32,
    payload_len: u32,
}

impl Location {
    /// Bytes of key and payload.
    pub(crate) fn len(&self) -> usize {
        self.key_len as usize + self.payload_len as usize
    }

    /// Reads the key and the payload back.
    pub(crate) fn read(&self) -> io::Result<(Bytes, Bytes)> {
        let mut buf = vec![0; self.len()];
        self.file.read_exact_at(&mut buf, self.pos)?;
        let mut key = Bytes::from(buf);
        let payload = key.split_off(self.key_len as usize);
        Ok((key, payload))
    }
}

struct Segment {
    /// Offset of its first record.
    base: i64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes written.
    len: u64,
    records: i64,
}

impl Segment {
    fn end(&self) -> i64 {
        self.base + self.records
    }
}

/// A record found when the journal was opened.
pub(crate) struct Recovered {
    pub(crate) offset: i64,
    pub(crate) location: Location,
}

/// One topic's segments, oldest first; records are appended to the newest.
pub(crate) struct Journal {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// Consumed segment files, renamed `spare-*`, to be written over.
    spares: Vec<(PathBuf, Arc<File>)>,
    segment_bytes: u64,
    scratch: Vec<u8>,
}

/// Creates `dir` (and its parents) readable by this user only: the journal holds raw payloads.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to a new file at `path`, readable by this user only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents)
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn corrupt(path: &Path, pos: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "bus journal {} is damaged at byte {pos}: {what}",
            path.display()
        ),
    )
}

fn u32_at(data: &[u8], pos: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&data[pos..pos + 4]);
    u32::from_le_bytes(word)
}

fn i64_at(data: &[u8], pos: usize) -> i64 {
    let mut word = [0; 8];
    word.copy_from_slice(&data[pos..pos + 8]);
    i64::from_le_bytes(word)
}

impl Journal {
    /// Opens the journal in `dir` (created if missing) and returns the records it holds, oldest
    /// first. An empty journal starts at offset `start`. A segment grows to about
    /// `segment_bytes` before the next one begins.
    pub(crate) fn open(
        dir: &Path,
        start: i64,
        segment_bytes: u64,
    ) -> io::Result<(Journal, Vec<Recovered>)> {
        private_dir(dir)?;
        let mut bases = Vec::new();
        let mut spares = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            if name.to_str().is_some_and(|n| n.starts_with("spare-")) {
                let path = dir.join(&name);
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                spares.push((path, Arc::new(file)));
                continue;
            }
            let Some(base) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            bases.push(base);
        }
        bases.sort_unstable();
        let mut journal = Journal {
            dir: dir.to_owned(),
            segments: VecDeque::new(),
            spares,
            segment_bytes: segment_bytes.max(1),
            scratch: Vec::new(),
        };
        let mut recovered = Vec::new();
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            if let Some(previous) = journal
                .segments
                .back()
                .filter(|previous| previous.end() != base)
            {
                return Err(corrupt(
                    &previous.path,
                    previous.len as usize,
                    &format!(
                        "the next segment starts at offset {base}, not {}",
                        previous.end()
                    ),
                ));
            }
            let segment = Self::recover(dir, base, i + 1 == count, &mut recovered)?;
            journal.segments.push_back(segment);
        }
        if journal.segments.is_empty() {
            journal.create(start)?;
        }
        Ok((journal, recovered))
    }

    /// Reads one segment's records; the newest segment ends at its first damaged or stale record
    /// (later appends write over the rest), any other segment's damage is an error.
    fn recover(
        dir: &Path,
        base: i64,
        newest: bool,
        out: &mut Vec<Recovered>,
    ) -> io::Result<Segment> {
        let path = segment_path(dir, base);
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(&path)?);
        let mut data = Vec::new();
        (&*file).read_to_end(&mut data)?;
        let mut pos = 0;
        let mut records = 0;
        let damage = loop {
            if pos == data.len() {
                break None;
            }
            if data.len() - pos < HEADER {
                break Some("a record header is cut short");
            }
            let key_len = u32_at(&data, pos + 12) as usize;
            let payload_len = u32_at(&data, pos + 16) as usize;
            let end = pos + HEADER + key_len + payload_len;
            if end > data.len() {
                break Some("a record is cut short");
            }
            if crc32fast::hash(&data[pos + 4..end]) != u32_at(&data, pos) {
                break Some("a record's checksum does not match");
            }
            if i64_at(&data, pos + 4) != base + records {
                break Some("an earlier use's record follows");
            }
            out.push(Recovered {
                offset: base + records,
                location: Location {
                    file: file.clone(),
                    pos: (pos + HEADER) as u64,
                    key_len: key_len as u32,
                    payload_len: payload_len as u32,
                },
            });
            records += 1;
            pos = end;
        };
        if let Some(what) = damage {
            if !newest {
                return Err(corrupt(&path, pos, what));
            }
            tracing::info!(path = %path.display(), pos, what, "the newest bus journal segment ends here; the rest is written over");
        }
        Ok(Segment {
            base,
            path,
            file,
            len: pos as u64,
            records,
        })
    }

    /// Starts the segment of offset `base`, in a spare file if there is one.
    fn create(&mut self, base: i64) -> io::Result<()> {
        let path = segment_path(&self.dir, base);
        let file = match self.spares.pop() {
            Some((spare, file)) => {
                fs::rename(&spare, &path)?;
                file
            }
            None => Arc::new(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?,
            ),
        };
        self.segments.push_back(Segment {
            base,
            path,
            file,
            len: 0,
            records: 0,
        });
        Ok(())
    }

    /// Appends a record (its offset is the journal's end) and says where its payload lies. On
    /// failure nothing counts as written: the next append overwrites whatever part was.
    pub(crate) fn append(&mut self, key: &[u8], payload: &[u8]) -> io::Result<Location> {
        let too_long = |_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB");
        let key_len = u32::try_from(key.len()).map_err(too_long)?;
        let payload_len = u32::try_from(payload.len()).map_err(too_long)?;
        if let Some(full) = self
            .segments
            .back()
            .filter(|s| s.records > 0 && s.len >= self.segment_bytes)
        {
            // What lies beyond the last record, from a spare's earlier use, is cut off first.
            full.file.set_len(full.len)?;
            let end = full.end();
            self.create(end)?;
        }
        let offset = self.end();
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.extend_from_slice(&[0; 4]);
        scratch.extend_from_slice(&offset.to_le_bytes());
        scratch.extend_from_slice(&key_len.to_le_bytes());
        scratch.extend_from_slice(&payload_len.to_le_bytes());
        scratch.extend_from_slice(key);
        scratch.extend_from_slice(payload);
        let crc = crc32fast::hash(&scratch[4..]);
        scratch[..4].copy_from_slice(&crc.to_le_bytes());
        let segment = self.segments.back_mut().expect("a journal has a segment");
        segment.file.write_all_at(scratch, segment.len)?;
        let location = Location {
            file: segment.file.clone(),
            pos: segment.len + HEADER as u64,
            key_len,
            payload_len,
        };
        segment.len += scratch.len() as u64;
        segment.records += 1;
        Ok(location)
    }

    /// The offset the next record gets.
    pub(crate) fn end(&self) -> i64 {
        self.segments.back().map_or(0, Segment::end)
    }

    /// Retires the segments whose every record lies below `offset` (never the newest one): kept
    /// as spares while fewer than [`SPARES`] are, deleted otherwise.
    pub(crate) fn remove_below(&mut self, offset: i64) {
        while self.segments.len() > 1 && self.segments[0].end() <= offset {
            let Some(segment) = self.segments.pop_front() else {
                return;
            };
            // A record still being read holds the file too: never write over it.
            if self.spares.len() < SPARES && Arc::strong_count(&segment.file) == 1 {
                let spare = self.dir.join(format!("spare-{:020}", segment.base));
                match fs::rename(&segment.path, &spare) {
                    Ok(()) => {
                        self.spares.push((spare, segment.file));
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(path = %segment.path.display(), %error, "cannot keep a bus journal segment as a spare");
                    }
                }
            }
            if let Err(error) = fs::remove_file(&segment.path) {
                tracing::warn!(path = %segment.path.display(), %error, "cannot delete a bus journal segment");
            }
        }
    }

    /// Segment files, oldest first.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Forces what was written to disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        for segment in &self.segments {
            segment.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shrike-journal-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn records_come_back_after_reopening_across_segments() {
        let dir = dir();
        let (mut journal, recovered) = Journal::open(&dir, 7, 100).expect("open");
        assert!(recovered.is_empty());
        for i in 0..10 {
            let location = journal
                .append(format!("k{i}").as_bytes(), &[i as u8; 40])
                .expect("append");
            let (key, payload) = location.read().expect("read");
            assert_eq!(
                (&key[..], &payload[..]),
                (format!("k{i}").as_bytes(), &[i as u8; 40][..])
            );
        }
        assert!(
            journal.segment_count() > 1,
            "segments roll at the size limit"
        );
        assert_eq!(journal.end(), 17);
        drop(journal);
        let (journal, recovered) = Journal::open(&dir, 0, 100).expect("reopen");
        assert_eq!(journal.end(), 17);
        let offsets: Vec<i64> = recovered.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (7..17).collect::<Vec<_>>());
        for (i, record) in recovered.iter().enumerate() {
            let (key, payload) = record.location.read().expect("read");
            assert_eq!(
                (&key[..], &payload[..]),
                (format!("k{i}").as_bytes(), &[i as u8; 40][..])
            );
        }
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_overwritten() {
        let dir = dir();
        let (mut journal, _) = Journal::open(&dir, 0, 1 << 20).expect("open");
        journal.append(b"a", b"first").expect("append");
        journal.append(b"b", b"second").expect("append");
        drop(journal);
        let path = segment_path(&dir, 0);
        let len = fs::metadata(&path).expect("segment").len();
        // A crash in the middle of the second write.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("segment")
            .set_len(len - 3)
            .expect("truncate");
        let (mut journal, recovered) = Journal::open(&dir, 0, 1 << 20).expect("reopen");
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].location.read().expect("read").1, "first");
        assert_eq!(journal.end(), 1);
        journal.append(b"c", b"third").expect("append");
        drop(journal);
        let (_, recovered) = Journal::open(&dir, 0, 1 << 20).expect("reopen");
        let payloads: Vec<Bytes> = recovered
            .iter()
            .map(|r| r.location.read().expect("read").1)
            .collect();
        assert_eq!(payloads, vec![Bytes::from("first"), Bytes::from("third")]);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn damage_before_the_newest_segment_is_an_error() {
        let dir = dir();
        let (mut journal, _) = Journal::open(&dir, 0, 10).expect("open");
        for _ in 0..3 {
            journal.append(b"k", b"payload").expect("append");
        }
        drop(journal);
        let path = segment_path(&dir, 0);
        let mut data = fs::read(&path).expect("segment");
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, data).expect("write");
        let error = Journal::open(&dir, 0, 10)
            .err()
            .expect("damage is reported");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("checksum"), "{error}");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn consumed_segments_become_spares_or_are_deleted_but_never_the_newest() {
        let dir = dir();
        let (mut journal, _) = Journal::open(&dir, 0, 10).expect("open");
        for _ in 0..4 {
            journal.append(b"k", b"payload").expect("append");
        }
        assert_eq!(journal.segment_count(), 4);
        journal.remove_below(2);
        assert_eq!(journal.segment_count(), 2);
        journal.remove_below(100);
        assert_eq!(journal.segment_count(), 1);
        // The newest segment, two spares; the third consumed segment was deleted.
        assert_eq!(fs::read_dir(&dir).expect("dir").count(), 1 + SPARES);
        let (journal, recovered) = Journal::open(&dir, 0, 10).expect("reopen");
        assert_eq!(journal.end(), 4);
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].offset, 3);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_spare_is_written_over_and_its_earlier_records_never_come_back() {
        let dir = dir();
        let payloads = |recovered: &[Recovered]| -> Vec<(i64, Bytes)> {
            recovered
                .iter()
                .map(|r| (r.offset, r.location.read().expect("read").1))
                .collect()
        };
        // 22-byte records, two per 40-byte segment.
        let (mut journal, _) = Journal::open(&dir, 0, 40).expect("open");
        for payload in [b"a", b"b", b"c", b"d"] {
            journal.append(b"k", payload).expect("append");
        }
        journal.remove_below(2);
        // "e" begins the next segment in the spare that held "a" and "b": "b" is still there,
        // intact, right after "e".
        journal.append(b"k", b"e").expect("append");
        drop(journal);
        let (mut journal, recovered) = Journal::open(&dir, 0, 40).expect("reopen");
        assert_eq!(
            payloads(&recovered),
            vec![(2, "c".into()), (3, "d".into()), (4, "e".into())]
        );
        assert_eq!(journal.end(), 5);
        journal.append(b"k", b"f").expect("append");
        drop(journal);
        let (_, recovered) = Journal::open(&dir, 0, 40).expect("reopen");
        assert_eq!(
            payloads(&recovered),
            vec![
                (2, "c".into()),
                (3, "d".into()),
                (4, "e".into()),
                (5, "f".into())
            ]
        );
        fs::remove_dir_all(&dir).ok();
    }
}
