//! The agent page where the seed system has it: behind the site's proxy at `/bankid/`. The real
//! nginx (Debian's `nginx` package) terminates TLS and proxies to the real `bankid-agent`
//! binary (`--base-path /bankid --trust-proxy 127.0.0.1/32`, embedded simulator), and a real
//! Chromium logs in and identifies a test person through it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::browser::{free_port, Browser};
use serde_json::{json, Value};

/// A child in its own process group: the group is ended on drop (TERM, then KILL after 3 s),
/// also when the test panics, so no nginx worker or agent outlives the test.
struct Group {
    child: Child,
}

impl Group {
    fn spawn(name: &'static str, mut command: Command) -> Group {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (bash scripts/setup.sh installs it)"));
        Group { child }
    }

    fn pgid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    fn alive(&self) -> bool {
        // SAFETY: signal 0 only asks whether a process of the group exists.
        unsafe { libc::kill(-self.pgid(), 0) == 0 }
    }

    fn stop(&mut self) {
        let pgid = self.pgid();
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the group created for this child (process_group(0)).
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // SAFETY: as above; ESRCH when the group is already gone is fine.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lines a child writes, collected by a thread (so that the pipe never fills).
fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

struct Agent {
    group: Group,
    port: u16,
    user: String,
    password: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// The real binary as the README's proxy section runs it, with its first generated agent.
fn start_agent(dir: &Path) -> Agent {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bankid-agent"));
    command
        .args(["--listen", "127.0.0.1:0", "--accounts"])
        .arg(dir.join("agents.toml"))
        .args(["--base-path", "/bankid", "--trust-proxy", "127.0.0.1/32"])
        .env_remove("BANKID_PRESET")
        .env_remove("BANKID_URL")
        .env("BANKID_SIM_SPEED", "0.2")
        .env("RUST_LOG", "info")
        .env("TMPDIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut group = Group::spawn("bankid-agent", command);
    let log = collect(group.child.stderr.take().unwrap());
    let mut out = BufReader::new(group.child.stdout.take().unwrap());
    let (mut user, mut password) = (String::new(), String::new());
    let port = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "bankid-agent exited early: {:?}",
            log.lock().unwrap()
        );
        if let Some(rest) = line.split("user name: ").nth(1) {
            let mut words = rest.split_whitespace();
            user = words.next().unwrap().to_string();
            let after = rest.split("password: ").nth(1).unwrap();
            password = after.split_whitespace().next().unwrap().to_string();
        }
        if let Some(url) = line.strip_prefix("open ") {
            let url = url.split_whitespace().next().unwrap();
            assert!(url.ends_with("/bankid/"), "{url}");
            let hostport = url.trim_start_matches("http://").split('/').next().unwrap();
            break hostport.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in out.lines() {});
    assert!(!user.is_empty(), "a first agent was created");
    Agent {
        group,
        port,
        user,
        password,
        log,
    }
}

struct Nginx {
    group: Group,
    port: u16,
    dir: PathBuf,
}

/// The proxy section's nginx configuration, with every path (pid, logs, temp files) in `dir`.
fn nginx_conf(dir: &Path, port: u16, agent_port: u16) -> String {
    let d = dir.display();
    // As root nginx would switch its workers to `nobody`, who cannot read the key in `dir`.
    // SAFETY: geteuid(2) has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    format!(
        r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;

        location /bankid/ {{
            proxy_pass http://127.0.0.1:{agent_port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location / {{
            return 404;
        }}
    }}
}}
"#
    )
}

/// nginx in the foreground (`daemon off`), on a port picked by binding and releasing it (nginx
/// cannot bind port 0), up once it accepts connections.
fn start_nginx(dir: &Path, agent_port: u16) -> Nginx {
    let port = free_port();
    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir, port, agent_port)).unwrap();
    let nginx = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    let mut command = Command::new(&nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut group = Group::spawn("nginx", command);
    let stderr = collect(group.child.stderr.take().unwrap());
    let until = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(
            matches!(group.child.try_wait(), Ok(None)),
            "nginx exited: {:?}\n{log}",
            stderr.lock().unwrap()
        );
        assert!(Instant::now() < until, "nginx did not come up:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        group,
        port,
        dir: dir.to_path_buf(),
    }
}

impl Nginx {
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

/// A self-signed certificate for localhost and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// An HTTPS client to nginx trusting our certificate, from the local address `from`.
fn https_client(cert_pem: &str, port: u16, from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_at_bankid_a_real_browser_logs_in_and_identifies() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("agent-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let agent = start_agent(&dir);
    let nginx = start_nginx(&dir, agent.port);
    let site = format!("https://localhost:{}", nginx.port);

    // Over TLS through nginx: the page and its API at /bankid/, nothing of ours elsewhere.
    let http = https_client(&cert, nginx.port, [127, 0, 0, 1].into());
    let page = http.get(format!("{site}/bankid/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("src=\"app.js\""));
    let bare = http.get(format!("{site}/bankid")).send().await.unwrap();
    assert_eq!(
        bare.status(),
        301,
        "nginx's own redirect, as the README says"
    );
    let to = bare.headers()["location"].to_str().unwrap().to_string();
    assert!(to.ends_with("/bankid/"), "{to}");
    let js = http
        .get(format!("{site}/bankid/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        http.get(format!("{site}/api/session"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A client at 127.0.0.2 claims to be 203.0.113.66: nginx appends the real address, and
    // the agent (trusting only nginx at 127.0.0.1) logs and counts 127.0.0.2.
    let liar = https_client(&cert, nginx.port, [127, 0, 0, 2].into());
    let r = liar
        .post(format!("{site}/bankid/api/login"))
        .header("Origin", &site)
        .header("X-Forwarded-For", "203.0.113.66")
        .header("X-Forwarded-Proto", "http")
        .json(&json!({"username": "mallory", "password": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "https Origin accepted: nginx said https");
    let until = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = agent
            .log
            .lock()
            .unwrap()
            .iter()
            // An unknown name is logged only as a hint ("ma…"), never as typed.
            .find(|l| l.contains("login for (unknown) ma… (7 characters)"))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(Instant::now() < until, "no log line for the failed login");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.contains("from 127.0.0.2:"), "{line}");
    assert!(!line.contains("203.0.113.66"), "{line}");
    assert!(!line.contains("mallory"), "{line}");

    // A real browser through nginx (the certificate is ours, so errors are ignored).
    let b = Browser::start_with(&["--ignore-certificate-errors"]).await;
    let page_url = format!("https://127.0.0.1:{}/bankid/", nginx.port);
    b.goto(&page_url).await;
    b.wait_visible("#login-view").await;
    assert!(b.visible("#sim-banner").await);
    b.type_into("#username", &agent.user).await;
    b.type_into("#password", &agent.password).await;
    b.click("#login-button").await;
    b.wait_visible("#identify-view").await;

    let cookies = b.cmd(reqwest::Method::GET, "/cookie", None).await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == bankid_agent::COOKIE)
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"))
        .clone();
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["path"], "/bankid", "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");

    b.click("#persons tbody tr:nth-child(1) .use-person").await;
    b.click("#identify").await;
    b.wait_visible("#result[data-state=complete]").await;
    assert_eq!(b.text("#result-title").await, "Identifierad");
    assert_eq!(b.text("#person-name").await, "Anna Lindqvist");
    b.screenshot("agent-proxy-identified.png").await;
    assert_eq!(
        b.cmd(reqwest::Method::GET, "/url", None).await,
        Value::String(page_url),
        "nothing personal in the address"
    );

    // Every call went through nginx, under /bankid/, and no personal number is in a URL.
    let access = nginx.access_log();
    assert!(
        access.contains("\"POST /bankid/api/login HTTP/1.1\" 200"),
        "{access}"
    );
    assert!(
        access.contains("\"POST /bankid/api/identify HTTP/1.1\" 201"),
        "{access}"
    );
    assert!(access.contains("\"GET /bankid/api/orders/"), "{access}");
    assert!(
        !access.contains("19850312") && !access.contains("850312"),
        "{access}"
    );
    let log = agent.log.lock().unwrap().join("\n");
    assert!(log.contains("logged in from 127.0.0.1"), "{log}");
    assert!(!log.contains("198503121116"), "{log}");

    b.click("#logout").await;
    b.wait_visible("#login-view").await;

    // Nothing outlives the test.
    drop(b);
    let (mut nginx, mut agent) = (nginx, agent);
    nginx.group.stop();
    agent.group.stop();
    assert!(!nginx.group.alive(), "nginx and its worker are gone");
    assert!(!agent.group.alive(), "bankid-agent is gone");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("nginx + Chromium test: {:?}", started.elapsed());
}
