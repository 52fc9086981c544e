//! A full disk (issue 15, defects 4 and 10), on a small tmpfs this test mounts:
//! segments start small and grow, so an idle queue with a few messages takes a
//! few KiB, not a whole segment; growth and segment creation that hit ENOSPC fail
//! that append cleanly (no SIGBUS, no file left behind, nothing written) and the
//! store appends again once space is back; every appended record survives a
//! reopen. Needs root (mount); skipped with a message where mounting is refused.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ringmq_store::{MessageRef, QueueStore, StoreConfig, StoreError};

/// A tmpfs mounted for the test's life; unmounted on drop (also when the test
/// panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the disk is full, leaving `leave` bytes free (about).
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let chunk = vec![0xAAu8; 64 * 1024];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = ((free - leave) as usize).min(chunk.len());
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    f.sync_all().unwrap();
    path
}

fn free_bytes(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn msg(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        timestamp_ms: 0,
        exchange: b"",
        routing_key: b"k",
        properties: b"",
        body,
    }
}

fn is_disk_full(e: &StoreError) -> bool {
    match e {
        StoreError::Io(io) => io.raw_os_error() == Some(libc_enospc()),
        StoreError::DiskFull { .. } => true,
        _ => false,
    }
}

fn libc_enospc() -> i32 {
    28
}

#[test]
fn a_queue_with_few_messages_takes_little_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..10u8 {
        q.append(msg(&[i; 100])).unwrap();
    }
    q.sync_all_blocking().unwrap();
    let len = fs::metadata(dir.path().join("msgs.0000000001")).unwrap().len();
    assert!(len <= 16 * 1024, "10 messages of 100 bytes take {len} bytes of segment");
    // It grows as needed, up to the segment size, then rolls over.
    for i in 0..20_000u32 {
        q.append(msg(&i.to_le_bytes().repeat(100))).unwrap();
    }
    assert!(q.segment_count() >= 2);
    let mut n = 0;
    while let Some(p) = q.next_ready().unwrap() {
        q.read(p).unwrap();
        n += 1;
    }
    assert_eq!(n, 20_010);
    q.close().unwrap();
}

#[test]
fn enospc_while_growing_or_creating_a_segment_is_an_error_and_clears() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let qdir = fs.path().join("q");
    let cfg = StoreConfig {
        segment_bytes: 256 * 1024,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(&qdir, cfg).unwrap();
    let body = vec![7u8; 1000];
    let mut appended = 0u64;
    for _ in 0..100 {
        q.append(msg(&body)).unwrap();
        appended += 1;
    }
    let filler = fill(fs.path(), 64 * 1024);
    let mut errors = 0;
    for _ in 0..2_000 {
        match q.append(msg(&body)) {
            Ok(_) => appended += 1,
            Err(e) => {
                assert!(is_disk_full(&e), "unexpected error {e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "the disk never filled");
    // No half-made segment is left behind to block the next one.
    fs::remove_file(&filler).unwrap();
    for _ in 0..600 {
        q.append(msg(&body)).unwrap();
        appended += 1;
    }
    q.close().unwrap();
    let (mut q, report) = QueueStore::open(&qdir, cfg).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert_eq!(q.ready_count(), appended);
    while let Some(p) = q.next_ready().unwrap() {
        assert_eq!(q.read(p).unwrap().body, &body[..]);
    }
}

#[test]
fn taking_space_below_the_floor_is_reported() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let cfg = StoreConfig {
        segment_bytes: 256 * 1024,
        free_disk_min_bytes: 1024 * 1024,
        ..StoreConfig::default()
    };
    let (mut q, _) = QueueStore::open(&fs.path().join("q"), cfg).unwrap();
    q.append(msg(b"x")).unwrap();
    assert!(!q.take_space_low(), "4 MiB free, floor 1 MiB");
    let _filler = fill(fs.path(), 1024 * 1024 + 64 * 1024);
    let body = vec![1u8; 4000];
    let mut low = false;
    for _ in 0..200 {
        q.append(msg(&body)).unwrap();
        if q.take_space_low() {
            low = true;
            break;
        }
    }
    assert!(low, "taking space below the floor was not reported");
    drop(q);
}
