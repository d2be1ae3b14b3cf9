//! `powercut-fs --image DIR --mount MNT --model strict|os-crash`: serves the durable image `DIR`
//! at `MNT` until `cut` on stdin; see the crate documentation for the protocol and the model.

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use fuser::{Config, MountOption};
use revkv_powercut::{Model, Owner, PowerCutFs, Volume};

const USAGE: &str = "usage: powercut-fs --image DIR --mount MNT --model strict|os-crash";

/// Threads serving requests. The volume has one lock, so more threads mostly overlap the
/// kernel's round trips with the work of another request.
const THREADS: usize = 4;

struct Args {
    image: PathBuf,
    mount: PathBuf,
    model: Model,
}

fn main() -> ExitCode {
    // A panic in a request handler would leave the other threads serving a half-changed volume;
    // dying at once makes the test see the bug instead.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let Err(message) = serve();
    eprintln!("powercut-fs: {message}");
    ExitCode::from(2)
}

/// Serves until the cut or the end of stdin, and exits from there; returns only on an error.
fn serve() -> Result<Infallible, String> {
    let args = parse_args(std::env::args_os().skip(1))?;
    let root = revkv_powercut::load(&args.image)
        .map_err(|error| format!("cannot load the image {}: {error}", args.image.display()))?;
    let metadata = std::fs::metadata(&args.image)
        .map_err(|error| format!("cannot read {}: {error}", args.image.display()))?;
    let owner = Owner {
        uid: metadata.uid(),
        gid: metadata.gid(),
    };
    let (filesystem, switch) = PowerCutFs::new(Volume::new(args.model, root, owner));
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("powercut".to_owned())];
    config.n_threads = Some(THREADS);
    // The session is never dropped: the process exits from inside this function, so that
    // fuser's own unmount on drop, which fails while the writer holds files open, never runs.
    let _session = fuser::spawn_mount(filesystem, &args.mount, &config)
        .map_err(|error| format!("cannot mount at {}: {error}", args.mount.display()))?;
    say("ready")?;
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|error| format!("cannot read stdin: {error}"))?;
        match line.trim() {
            "cut" => {
                let survivors = switch.cut();
                let saved = revkv_powercut::save(&args.image, &survivors).map_err(|error| {
                    format!("cannot write the image {}: {error}", args.image.display())
                });
                let unmounted = unmount(&args.mount);
                saved?;
                unmounted?;
                say("cut done")?;
                // Exits without joining fuser's threads, which wait for a kernel connection
                // that lives until the writer's last open file is closed.
                std::process::exit(0);
            }
            "" => {}
            other => eprintln!("powercut-fs: unknown command {other:?} (the one command is cut)"),
        }
    }
    unmount(&args.mount)?;
    eprintln!("powercut-fs: stdin closed without a cut; the image is left as it was");
    std::process::exit(1);
}

fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let (mut image, mut mount, mut model) = (None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{} needs a value\n{USAGE}", flag.to_string_lossy()))
        };
        match flag.to_str() {
            Some("--image") => image = Some(PathBuf::from(value()?)),
            Some("--mount") => mount = Some(PathBuf::from(value()?)),
            Some("--model") => {
                let text = value()?;
                let text = text.to_str().ok_or(format!("a bad --model\n{USAGE}"))?;
                model = Some(text.parse::<Model>()?);
            }
            Some("--help" | "-h") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    match (image, mount, model) {
        (Some(image), Some(mount), Some(model)) => Ok(Args {
            image,
            mount,
            model,
        }),
        _ => Err(format!(
            "--image, --mount and --model are required\n{USAGE}"
        )),
    }
}

/// Prints one line of the protocol, flushed at once: the driver waits for it.
fn say(line: &str) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("cannot write stdout: {error}"))
}

/// Detaches the mount even though the writer, stopped or dying, still holds files under it.
fn unmount(mount: &Path) -> Result<(), String> {
    let status = Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(mount)
        .status()
        .map_err(|error| format!("cannot run fusermount3 (Debian package fuse3): {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "fusermount3 -u -z {} failed: {status}",
            mount.display()
        ))
    }
}
