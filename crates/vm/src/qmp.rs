//! A small QMP client: greeting, `qmp_capabilities`, commands; events that
//! arrive between are kept, not mistaken for answers.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why talking to QEMU over QMP failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// QEMU's QMP socket did not accept a connection in time.
    #[error("QMP socket {path}: not ready in time")]
    NotReady {
        /// The socket.
        path: String,
        /// The last connection error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU's QMP socket went away.
    #[error("QMP socket {path}: QEMU is gone")]
    Gone {
        /// The socket.
        path: String,
    },
    /// Reading or writing the socket failed.
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU sent a line that is not JSON.
    #[error("QMP sent something that is not JSON: {0}")]
    Json(String),
    /// QEMU closed the connection.
    #[error("QMP closed the connection (QEMU exited?)")]
    Closed,
    /// QEMU answered a command with an error.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

/// A QMP connection, in command mode.
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    /// QEMU's greeting (its version and capabilities).
    pub greeting: Value,
    /// Asynchronous events received so far (SHUTDOWN, RESET, …).
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connects, retrying until `deadline` while `alive()` says QEMU is still
    /// running (the socket appears a little after QEMU starts).
    pub fn connect(
        path: &Path,
        deadline: Instant,
        alive: &mut dyn FnMut() -> bool,
    ) -> Result<Qmp, QmpError> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(source) => {
                    if !alive() {
                        return Err(QmpError::Gone {
                            path: path.display().to_string(),
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(QmpError::NotReady {
                            path: path.display().to_string(),
                            source,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
            greeting: Value::Null,
            events: Vec::new(),
        };
        qmp.greeting = qmp.read_message()?;
        if qmp.greeting.get("QMP").is_none() {
            return Err(QmpError::Json(format!(
                "expected a QMP greeting, got {}",
                qmp.greeting
            )));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| QmpError::Json(format!("{e}: {}", line.trim())))
    }

    /// Runs a command and returns its "return" value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let v = self.read_message()?;
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("?").to_string(),
                    desc: e["desc"].as_str().unwrap_or("?").to_string(),
                });
            }
            return Err(QmpError::Json(format!("unexpected QMP message {v}")));
        }
    }

    /// vCPU index → host thread id, from `query-cpus-fast` (never interrupts vCPUs).
    pub fn vcpu_threads(&mut self) -> Result<Vec<(u32, u32)>, QmpError> {
        let r = self.execute("query-cpus-fast", None)?;
        let list = r
            .as_array()
            .ok_or_else(|| QmpError::Json(format!("query-cpus-fast returned {r}")))?;
        let mut out = Vec::new();
        for c in list {
            let idx = c["cpu-index"].as_u64();
            let tid = c["thread-id"].as_u64();
            match (idx, tid) {
                (Some(i), Some(t)) => out.push((i as u32, t as u32)),
                _ => {
                    return Err(QmpError::Json(format!(
                        "query-cpus-fast entry without cpu-index/thread-id: {c}"
                    )));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// QEMU's version from the greeting ("7.2.22").
    pub fn qemu_version(&self) -> Option<String> {
        let v = &self.greeting["QMP"]["version"]["qemu"];
        Some(format!(
            "{}.{}.{}",
            v["major"].as_u64()?,
            v["minor"].as_u64()?,
            v["micro"].as_u64()?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A scripted QMP server: sends the greeting, then for each received line
    /// the next canned reply lines.
    fn fake_server(
        path: &Path,
        replies: Vec<Vec<&'static str>>,
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\n").unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut got = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                got.push(line.trim().to_string());
                for l in reply {
                    s.write_all(l.as_bytes()).unwrap();
                    s.write_all(b"\n").unwrap();
                }
            }
            got
        })
    }

    #[test]
    fn capabilities_events_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake_server(
            &path,
            vec![
                vec![r#"{"return": {}}"#],
                vec![
                    r#"{"event": "RTC_CHANGE", "data": {}}"#,
                    r#"{"return": [{"cpu-index": 0, "thread-id": 4242, "qom-path": "/machine/unattached/device[0]", "target": "x86_64"}]}"#,
                ],
                vec![
                    r#"{"error": {"class": "CommandNotFound", "desc": "The command query-stats has not been found"}}"#,
                ],
            ],
        );
        let mut q =
            Qmp::connect(&path, Instant::now() + Duration::from_secs(5), &mut || true).unwrap();
        assert_eq!(q.qemu_version().as_deref(), Some("7.2.22"));
        assert_eq!(q.vcpu_threads().unwrap(), vec![(0, 4242)]);
        assert_eq!(q.events.len(), 1);
        let err = q.execute("query-stats", None).unwrap_err();
        assert!(err.to_string().contains("CommandNotFound"), "{err}");
        drop(q);
        let sent = server.join().unwrap();
        assert_eq!(sent[0], r#"{"execute":"qmp_capabilities"}"#);
        assert_eq!(sent[1], r#"{"execute":"query-cpus-fast"}"#);
    }

    #[test]
    fn connect_gives_up_when_qemu_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let err = Qmp::connect(
            &dir.path().join("nope.sock"),
            Instant::now() + Duration::from_secs(5),
            &mut || false,
        )
        .err()
        .unwrap();
        assert!(matches!(err, QmpError::Gone { .. }), "{err}");
        assert!(err.to_string().contains("QEMU is gone"), "{err}");
        // Alive, but never listening: gives up at the deadline with the cause.
        let err = Qmp::connect(&dir.path().join("nope.sock"), Instant::now(), &mut || true)
            .err()
            .unwrap();
        assert!(matches!(err, QmpError::NotReady { .. }), "{err}");
    }
}
