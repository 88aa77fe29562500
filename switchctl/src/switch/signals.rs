//! SIGINT, SIGTERM and SIGHUP while switchctl works.
//!
//! The first signal sets the current phase's [`Interrupt`]: no new app or route is started, and
//! those under way finish their step, so every route is left in a state the next run continues
//! from. SIGHUP (an SSH session dropping) is handled like SIGTERM: a hang-up must not leave a
//! route half switched any more than a `kill` may. While `run`'s COMMAND runs, signals are handed
//! to it instead ([`Signals::next`]). A second signal outside COMMAND stops switchctl at once
//! (each route is still in a state the same command continues from).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, Ordering},
};

use nix::sys::signal::Signal;
use tokio::{signal::unix::SignalKind, sync::mpsc};

use crate::output::Output;

/// Set once a signal arrives, or once the rate limit holds requests back beyond `--max-wait`: no
/// new app or route is started after that.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicU8>);

const RUNNING: u8 = 0;
const SIGNALLED: u8 = 1;
const RATE_LIMITED: u8 = 2;

impl Interrupt {
    /// Marks the run as interrupted by a signal.
    pub fn set(&self) {
        self.0.store(SIGNALLED, Ordering::SeqCst);
    }

    /// Marks the run as stopped by the rate limit (a signal's mark stays).
    pub fn set_rate_limited(&self) {
        let _ = self.0.compare_exchange(RUNNING, RATE_LIMITED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether the run was interrupted, by a signal or the rate limit.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) != RUNNING
    }

    /// Whether the run was stopped by the rate limit (and no signal).
    pub fn rate_limited(&self) -> bool {
        self.0.load(Ordering::SeqCst) == RATE_LIMITED
    }
}

/// The signal handling of one invocation.
#[derive(Debug)]
pub struct Signals {
    shared: Arc<SignalState>,
    rx: mpsc::UnboundedReceiver<Signal>,
}

#[derive(Debug)]
struct SignalState {
    interrupt: Mutex<Interrupt>,
    in_command: AtomicBool,
    count: AtomicU32,
    last: AtomicI32,
    out: Output,
}

impl Signals {
    /// Starts listening; notices go to `out`.
    pub fn install(out: &Output) -> Signals {
        let shared = Arc::new(SignalState {
            interrupt: Mutex::new(Interrupt::default()),
            in_command: AtomicBool::new(false),
            count: AtomicU32::new(0),
            last: AtomicI32::new(0),
            out: out.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let listening = Arc::clone(&shared);
        let streams = (
            tokio::signal::unix::signal(SignalKind::interrupt()),
            tokio::signal::unix::signal(SignalKind::terminate()),
            tokio::signal::unix::signal(SignalKind::hangup()),
        );
        match streams {
            (Ok(mut int), Ok(mut term), Ok(mut hup)) => {
                tokio::spawn(async move {
                    loop {
                        let signal = tokio::select! {
                            Some(()) = int.recv() => Signal::SIGINT,
                            Some(()) = term.recv() => Signal::SIGTERM,
                            Some(()) = hup.recv() => Signal::SIGHUP,
                            else => break,
                        };
                        listening.on_signal(signal, &tx);
                    }
                });
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                out.notice(&format!("warning: cannot listen for Ctrl-C, SIGTERM and SIGHUP: {e}"));
            }
        }
        Signals { shared, rx }
    }

    /// A fresh interrupt for the next phase (the previous one may have been set).
    pub fn phase(&self) -> Interrupt {
        let fresh = Interrupt::default();
        *self.shared.lock() = fresh.clone();
        fresh
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        (self.shared.count.load(Ordering::SeqCst) > 0).then(|| self.shared.last.load(Ordering::SeqCst))
    }

    /// While COMMAND runs, signals are not acted on here but handed out by [`Signals::next`].
    pub fn set_in_command(&self, yes: bool) {
        self.shared.in_command.store(yes, Ordering::SeqCst);
    }

    /// The next signal that arrived while COMMAND ran.
    pub async fn next(&mut self) -> Option<Signal> {
        self.rx.recv().await
    }
}

impl SignalState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Interrupt> {
        self.interrupt.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_signal(&self, signal: Signal, tx: &mpsc::UnboundedSender<Signal>) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.last.store(signal as i32, Ordering::SeqCst);
        if self.in_command.load(Ordering::SeqCst) {
            let _ = tx.send(signal);
            return;
        }
        if n == 1 {
            self.lock().set();
            self.out.notice(&format!(
                "{} received: finishing the steps under way, starting no new ones (again to stop at once)",
                signal.as_str()
            ));
        } else {
            self.out.notice(&format!(
                "{} received again: stopping now. Routes may be mid-switch; each is in a state the same command \
                 continues from (`switchctl status` shows them).",
                signal.as_str()
            ));
            self.out.clear();
            std::process::exit(128 + signal as i32);
        }
    }
}

/// How a shell reports a process a signal ended: 128 + the signal.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}
