//! What the tests share: a running `powercut-fs`, and the check that FUSE works here.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// Fails the test, rather than skipping it, when FUSE cannot work here.
pub fn check_fuse_is_available() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the power-cut tests need FUSE (a kernel with fuse, and the \
         device in this container)"
    );
    let fusermount = Command::new("fusermount3")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        fusermount.is_ok_and(|status| status.success()),
        "fusermount3 is missing: the power-cut tests need Debian's fuse3 package \
         (scripts/test.sh installs it)"
    );
}

/// A running `powercut-fs`. Dropping it before the cut kills it and detaches its mount.
pub struct Filesystem {
    process: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    mount: PathBuf,
}

impl Filesystem {
    /// Starts `powercut-fs` on `image` and waits until it is mounted at `mount`.
    pub fn mount(image: &Path, mount: &Path, model: &str) -> Filesystem {
        let mut process = Command::new(env!("CARGO_BIN_EXE_powercut-fs"))
            .arg("--image")
            .arg(image)
            .arg("--mount")
            .arg(mount)
            .args(["--model", model])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("powercut-fs starts");
        let stdin = process.stdin.take();
        let lines = read_lines(process.stdout.take().expect("stdout is piped"));
        let mut filesystem = Filesystem {
            process,
            stdin,
            lines,
            mount: mount.to_owned(),
        };
        if let Err(problem) = filesystem.expect_line("ready", Duration::from_secs(120)) {
            let status = filesystem.process.wait().expect("powercut-fs is reaped");
            panic!(
                "powercut-fs could not mount a FUSE filesystem at {} ({problem}; {status}); its \
                 stderr above says why. The power-cut tests need /dev/fuse, fusermount3 and the \
                 right to mount",
                mount.display()
            );
        }
        filesystem
    }

    /// Cuts the power and waits until what survived is on the disk and the mount is gone.
    pub fn cut(&mut self) {
        let mut stdin = self.stdin.take().expect("the power is cut once");
        stdin
            .write_all(b"cut\n")
            .and_then(|()| stdin.flush())
            .expect("powercut-fs takes the cut");
        if let Err(problem) = self.expect_line("cut done", Duration::from_secs(300)) {
            panic!("powercut-fs did not finish the cut: {problem}");
        }
        let status = self.process.wait().expect("powercut-fs is reaped");
        assert!(
            status.success(),
            "powercut-fs failed after the cut: {status}"
        );
    }

    fn expect_line(&self, expected: &str, timeout: Duration) -> Result<(), String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) if line == expected => Ok(()),
            Ok(line) => Err(format!("it printed {line:?}, not {expected:?}")),
            Err(RecvTimeoutError::Timeout) => Err(format!("no {expected:?} within {timeout:?}")),
            Err(RecvTimeoutError::Disconnected) => Err(format!("it exited before {expected:?}")),
        }
    }
}

impl Drop for Filesystem {
    fn drop(&mut self) {
        if matches!(self.process.try_wait(), Ok(None)) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
        // The cut unmounts; this is for a harness that failed half-way.
        let _ = Command::new("fusermount3")
            .args(["-u", "-z", "-q", "--"])
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status();
    }
}

/// The lines `output` yields, from a thread, until EOF.
pub fn read_lines(output: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
