//! Reading a file someone else wrote (the web configuration, the PEM files it names,
//! `--api-ca-file`) without hanging and without unbounded memory: regular files only (a FIFO
//! or a device is refused before a byte is read), opened without blocking, and at most a given
//! size.

use std::io::{self, Read};
use std::path::Path;

/// The bytes of the regular file at `path`, which must hold at most `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, a device or a directory cannot be read as one)",
        )
    };
    // Checked before opening: opening a FIFO waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Between the check and the open, the path may have become a FIFO: open it so that this
    // cannot block, and look again at what was opened.
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"hello").unwrap();
        assert_eq!(read_regular(&small, 5).unwrap(), b"hello");
        let e = read_regular(&small, 4).unwrap_err();
        assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);

        let e = read_regular(dir.path(), 5).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(read_regular(&dir.path().join("absent"), 5).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path and creates a FIFO there.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 5).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
