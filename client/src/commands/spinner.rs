//! A spinner on stderr while a slow request (network probes in the daemon) is answered.
//!
//! The client is blocking: a second thread draws while the main thread waits on the socket. Only
//! on a terminal, so pipes, logs and JSON consumers never see it.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::Duration;

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// Runs `work`; meanwhile shows `label` with a spinner when stderr is a terminal.
pub fn while_waiting<T>(label: &str, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let label = label.to_owned();
    let drawer = std::thread::spawn(move || {
        let mut err = std::io::stderr();
        // Wait a moment first: a cached answer comes back before anything flickers.
        let mut frame = 0;
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(Duration::from_millis(if frame == 0 { 150 } else { 100 }))
        {
            let _ = write!(err, "\r{} {label}…", FRAMES[frame % FRAMES.len()]);
            let _ = err.flush();
            frame += 1;
        }
        if frame > 0 {
            // Erase the line so the answer starts clean.
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    });
    let result = work();
    let _ = stop.send(());
    let _ = drawer.join();
    result
}
