//! A terminal for the interactive tests: a tmux server of the test's own
//! runs the command; keys go in with `send-keys`, the screen comes back
//! with `capture-pane`.
use super::{required, shared_target};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of its own, with one window running a command.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(dir: &Path, command: &str) -> Option<Tmux> {
        Tmux::sized(dir, command, 100, 32)
    }

    /// [`Tmux::start`] in a terminal of `width`×`height`.
    pub fn sized(dir: &Path, command: &str, width: u16, height: u16) -> Option<Tmux> {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !required(ok, "tmux is not installed (scripts/install.sh installs it)") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("nym-test-{}-{n}", std::process::id());
        let env = format!(
            "CARGO_TARGET_DIR={} NYM_HISTORY={} XDG_CACHE_HOME={} TERM=xterm-256color",
            shared_target().display(),
            dir.join("history").display(),
            dir.join("../cache").display()
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "-c",
            ])
            .arg(dir)
            .arg(format!("env {env} {command}; echo EXITED $?; sleep 60"))
            .status()
            .unwrap();
        assert!(status.success());
        Some(Tmux { socket })
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally. (tmux takes an argument ending in `;` as
    /// a command separator, so semicolons go as hex.)
    pub fn type_text(&self, text: &str) {
        for (i, part) in text.split(';').enumerate() {
            if i > 0 {
                self.tmux(&["send-keys", "-H", "3b"]);
            }
            if !part.is_empty() {
                self.tmux(&["send-keys", "-l", part]);
            }
        }
    }

    /// Leaves the REPL with Ctrl-D once `prompt` is back; the screen after.
    pub fn leave(&self, prompt: &str) -> String {
        self.wait_prompt(prompt, Duration::from_secs(10));
        self.keys(&["C-d"]);
        self.wait_for("EXITED 0", Duration::from_secs(30))
    }

    /// Types `text` and Enter.
    pub fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// Sends keys by name: `Enter`, `Tab`, `C-c`.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Waits until `prompt` is the last line on the screen: the line
    /// editor is reading again, with the terminal in raw mode. A key sent
    /// before that reaches the terminal in cooked mode, where Ctrl-D is
    /// swallowed as an end-of-file marker and Ctrl-C becomes a signal
    /// instead of reaching the editor.
    pub fn wait_prompt(&self, prompt: &str, within: Duration) {
        self.wait_until(&format!("the prompt {prompt:?} last"), within, |s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim_end)
                == Some(prompt)
        });
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-300"])
    }

    /// Waits until the screen contains `want`; the screen.
    pub fn wait_for(&self, want: &str, within: Duration) -> String {
        self.wait_until(&format!("{want:?}"), within, |s| s.contains(want))
    }

    /// Waits until `ok` holds of the screen; the screen.
    pub fn wait_until(&self, what: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what} on the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
