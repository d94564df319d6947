//! Reading one container instance's log as `kubectl logs` asks: the rotated files oldest
//! first, then the current file; `tailLines` keeps the last lines, `sinceSeconds`/`sinceTime`
//! drop older lines, `limitBytes` stops after that many bytes, `timestamps` prefixes each
//! line with its time. `follow` then keeps reading the current file as it grows, moving to
//! the new file when the agent rotates it, until the container has exited (and everything it
//! wrote was sent) or the client went away.

use std::{
    collections::VecDeque, future::Future, os::unix::fs::MetadataExt, path::PathBuf, pin::Pin,
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use tokio::{
    fs::File,
    io::{AsyncBufReadExt, BufReader},
    sync::mpsc,
};

use super::{format::Lines, rotated_files};

/// How often a followed log is checked for new lines, rotation and the container's exit.
const POLL: Duration = Duration::from_millis(200);

/// The kubelet's log options (PodLogOptions) that the agent applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<u64>,
    pub since: Option<Timestamp>,
    pub timestamps: bool,
}

/// Whether the container still runs (its log may still grow).
pub type Alive = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Complete lines from a file that may still be written to: a line without its newline yet
/// stays buffered until the rest arrives.
struct LineReader {
    file: BufReader<File>,
    ino: u64,
    buf: Vec<u8>,
}

impl LineReader {
    async fn open(path: &std::path::Path) -> std::io::Result<LineReader> {
        let file = File::open(path).await?;
        let ino = file.metadata().await?.ino();
        Ok(LineReader {
            file: BufReader::new(file),
            ino,
            buf: Vec::new(),
        })
    }

    /// The next complete line, or None at the end of what is written so far.
    async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.file.read_until(b'\n', &mut self.buf).await?;
        if self.buf.ends_with(b"\n") {
            Ok(Some(std::mem::take(&mut self.buf)))
        } else {
            Ok(None)
        }
    }
}

/// Where output lines go: to the client, or into the tail window while it is filled.
struct Out {
    tx: mpsc::Sender<Vec<u8>>,
    left: Option<u64>,
    tail: Option<(usize, VecDeque<Vec<u8>>)>,
    lines: Lines,
}

impl Out {
    /// Takes one raw file line; false once nothing more should be sent.
    async fn line(&mut self, raw: &[u8]) -> bool {
        let Some(line) = self.lines.push(raw) else {
            return true;
        };
        match &mut self.tail {
            Some((n, window)) => {
                window.push_back(line);
                if window.len() > *n {
                    window.pop_front();
                }
                true
            }
            None => self.send(line).await,
        }
    }

    /// Ends the tail window: its lines are sent and later lines go straight out.
    async fn flush_tail(&mut self) -> bool {
        let Some((_, window)) = self.tail.take() else {
            return true;
        };
        for line in window {
            if !self.send(line).await {
                return false;
            }
        }
        true
    }

    async fn send(&mut self, mut line: Vec<u8>) -> bool {
        let mut last = false;
        if let Some(left) = self.left.as_mut() {
            if line.len() as u64 >= *left {
                line.truncate(*left as usize);
                last = true;
            }
            *left -= line.len() as u64;
        }
        self.tx.send(line).await.is_ok() && !last
    }
}

/// Reads the log at `log` (the instance's current file) into `tx` as `options` ask;
/// `alive` says whether the container still runs (only asked when following).
pub async fn run(
    log: PathBuf,
    options: Options,
    alive: Alive,
    tx: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<()> {
    let mut out = Out {
        tx,
        left: options.limit_bytes,
        tail: options.tail_lines.map(|n| (n, VecDeque::new())),
        lines: Lines::new(options.since, options.timestamps),
    };
    for f in rotated_files(&log) {
        // A file rotated away meanwhile is gone: its lines are lost to this reader too.
        let Ok(mut r) = LineReader::open(&f).await else {
            continue;
        };
        while let Some(l) = r.next().await? {
            if !out.line(&l).await {
                return Ok(());
            }
        }
    }
    let mut current = LineReader::open(&log).await.ok();
    if let Some(r) = current.as_mut() {
        while let Some(l) = r.next().await? {
            if !out.line(&l).await {
                return Ok(());
            }
        }
    }
    if !out.flush_tail().await || !options.follow {
        return Ok(());
    }
    loop {
        if let Some(r) = current.as_mut() {
            while let Some(l) = r.next().await? {
                if !out.line(&l).await {
                    return Ok(());
                }
            }
        }
        if out.tx.is_closed() {
            return Ok(());
        }
        // Rotated: the runtime writes to a new file at the same path once the agent had it
        // reopen the log; the old file gets nothing more once the new one exists.
        let on_disk = std::fs::metadata(&log).ok().map(|m| m.ino());
        if on_disk.is_some() && on_disk != current.as_ref().map(|r| r.ino) {
            if let Ok(new) = LineReader::open(&log).await {
                // Lines that reached the old file after the read above.
                if let Some(r) = current.as_mut() {
                    while let Some(l) = r.next().await? {
                        if !out.line(&l).await {
                            return Ok(());
                        }
                    }
                }
                current = Some(new);
                continue;
            }
        }
        if !alive().await {
            // Whatever it wrote before it exited is in the file now.
            if let Some(r) = current.as_mut() {
                while let Some(l) = r.next().await? {
                    if !out.line(&l).await {
                        break;
                    }
                }
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use super::*;

    fn entry(i: u32) -> String {
        format!("2024-05-01T10:00:{i:02}Z stdout F line {i}\n")
    }

    async fn collect(log: PathBuf, options: Options, alive: Alive) -> String {
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(run(log, options, alive, tx));
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend(chunk);
        }
        task.await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    fn dead() -> Alive {
        Box::new(|| Box::pin(async { false }))
    }

    #[tokio::test]
    async fn reads_rotated_files_then_the_current_one_with_tail_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            dir.path().join("0.log.00000000000000000001"),
            entry(1) + &entry(2),
        )
        .unwrap();
        std::fs::write(&log, entry(3) + &entry(4)).unwrap();
        let all = collect(log.clone(), Options::default(), dead()).await;
        assert_eq!(all, "line 1\nline 2\nline 3\nline 4\n");
        let tail = Options {
            tail_lines: Some(3),
            ..Options::default()
        };
        assert_eq!(
            collect(log.clone(), tail, dead()).await,
            "line 2\nline 3\nline 4\n"
        );
        let none = Options {
            tail_lines: Some(0),
            ..Options::default()
        };
        assert_eq!(collect(log.clone(), none, dead()).await, "");
        let limit = Options {
            limit_bytes: Some(10),
            ..Options::default()
        };
        assert_eq!(collect(log.clone(), limit, dead()).await, "line 1\nlin");
        let since = Options {
            since: Some("2024-05-01T10:00:03Z".parse().unwrap()),
            ..Options::default()
        };
        assert_eq!(collect(log, since, dead()).await, "line 3\nline 4\n");
    }

    #[tokio::test]
    async fn follow_survives_rotation_and_ends_when_the_container_exits() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, entry(1)).unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let r = running.clone();
        let alive: Alive = Box::new(move || {
            let r = r.clone();
            Box::pin(async move { r.load(Ordering::SeqCst) })
        });
        let options = Options {
            follow: true,
            ..Options::default()
        };
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(run(log.clone(), options, alive, tx));
        assert_eq!(rx.recv().await.unwrap(), b"line 1\n");
        // A line written in two pieces arrives whole.
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"2024-05-01T10:00:02Z stdout F li").unwrap();
        tokio::time::sleep(POLL * 2).await;
        f.write_all(b"ne 2\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"line 2\n");
        // Rotation: the old file gets one more line before the writer moves to the new one.
        std::fs::rename(&log, dir.path().join("0.log.00000000000000000001")).unwrap();
        f.write_all(entry(3).as_bytes()).unwrap();
        std::fs::write(&log, entry(4)).unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"line 3\n");
        assert_eq!(rx.recv().await.unwrap(), b"line 4\n");
        running.store(false, Ordering::SeqCst);
        assert_eq!(rx.recv().await, None);
        task.await.unwrap().unwrap();
    }
}
