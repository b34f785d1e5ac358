//! The web UI in a real browser: `tributary standalone` serves it, headless
//! Chromium drives it through ChromeDriver (W3C WebDriver over HTTP; both
//! from Debian, installed by scripts/test.sh). A user opens the DAG list,
//! triggers `hello` with a conf from the generated form, watches the run turn
//! green without reloading, and reads a task's log. Screenshots of each page
//! go to docs/screenshots/ (shown in the README).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver session.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Finds an element, waiting (bounded) for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/element", self.base);
            let r = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(json!({"using": "css selector", "value": css}).to_string())
                .send()
                .await
                .unwrap();
            let ok = r.status().is_success();
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            if ok {
                return v["value"][ELEMENT].as_str().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element `css` selects now. Live regions are
    /// replaced while the page refreshes, so a found element can go stale
    /// before it is read: then it is looked up again.
    async fn text_of(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let el = self.find(css).await;
            let r = self
                .http
                .get(format!("{}/element/{el}/text", self.base))
                .send()
                .await
                .unwrap();
            let ok = r.status().is_success();
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            if ok {
                return v["value"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                v["value"]["error"] == "stale element reference" && Instant::now() < deadline,
                "text of {css}: {v}"
            );
        }
    }

    async fn click(&self, el: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn fill(&self, el: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn screenshot(&self, name: &str) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, target).unwrap();
        }
    }
}

fn chromium() -> (PathBuf, PathBuf) {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{names:?} not installed (scripts/test.sh installs Debian's chromium and chromium-driver)"))
    };
    (
        find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]),
        find(&["/usr/bin/chromedriver"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_triggers_a_dag_and_watches_it_succeed_in_the_browser() {
    let env = sqlite_env();
    // The repository's DAGs folder as shipped (seed files included).
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("dags"),
        &env.dags(),
    );
    // A lake table for the Query page (written by Python `deltalake`).
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, os, pyarrow as pa\nfrom deltalake import write_deltalake\n\
             write_deltalake(sys.argv[1], pa.table({'nation': ['FR', 'DE', 'FR', 'US', 'FR', 'DE'], 'age': [31, 42, 25, 60, 38, 47]}))\nos._exit(0)",
            env.path("lake/people").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sa, banner) = env.standalone("127.0.0.1:0");
    let web = banner.iter().find_map(|line| {
        let rest = line.trim_start().strip_prefix("web UI")?;
        let url = rest.split_whitespace().next()?;
        Some(url.trim_end_matches('/').to_string())
    });
    let _sa = Killed(sa);
    let web = web.expect("the banner names the web UI");

    let (chrome, driver) = chromium();
    let port = free_port();
    let _driver = Killed(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let status_url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(&status_url).send().await
            && let Ok(t) = r.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&t)
            && v["value"]["ready"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session: Value = serde_json::from_str(
        &http
            .post(format!("http://127.0.0.1:{port}/session"))
            .header("content-type", "application/json")
            .body(
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chrome,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
                    }
                }}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let sid = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"));
    let b = Browser {
        http: http.clone(),
        base: format!("http://127.0.0.1:{port}/session/{sid}"),
    };

    // The DAG list.
    b.go(&format!("{web}/")).await;
    assert_eq!(b.text_of("a.dag-id[href='/dags/hello']").await, "hello");
    b.screenshot("dags.png").await;

    // Trigger with a conf from the form generated from the DAG's params.
    b.go(&format!("{web}/dags/hello/trigger")).await;
    let name = b.find("#p-name").await;
    b.fill(&name, "browser test").await;
    b.screenshot("trigger.png").await;
    let submit = b.find("#trigger-submit").await;
    b.click(&submit).await;
    // The run page; its state refreshes in place until it turns green.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = b.text_of("#run-state").await;
        if t == "success" {
            break;
        }
        assert_ne!(t, "failed", "the run failed");
        assert!(Instant::now() < deadline, "the run did not succeed: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(b.url().await.contains("/dags/hello/runs/manual__"));
    assert!(b.text_of(".flash").await.contains("triggered hello"));
    b.screenshot("run.png").await;

    // A destructive button asks first; dismissing changes nothing.
    let mark = b.find("#mark-run-failed").await;
    b.click(&mark).await;
    let question = b.call(reqwest::Method::GET, "/alert/text", None).await;
    assert!(
        question
            .as_str()
            .unwrap_or_default()
            .starts_with("Mark run manual__"),
        "{question}"
    );
    b.call(reqwest::Method::POST, "/alert/dismiss", Some(json!({})))
        .await;
    assert_eq!(
        b.text_of("#run-state").await,
        "success",
        "dismissed: not marked"
    );

    // A task's log.
    let greet = b.find("a[href$='/tasks/greet']").await;
    b.click(&greet).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = b.text_of("#log").await;
        if text.contains("hello, browser test") {
            break;
        }
        assert!(Instant::now() < deadline, "log: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.screenshot("task_log.png").await;

    // The grid with the run, and the streams page.
    b.go(&format!("{web}/dags/hello")).await;
    b.find("table.grid a.cell.state-success").await;
    b.find("svg.graph g.node").await;
    b.screenshot("dag_grid.png").await;
    b.go(&format!("{web}/streams")).await;
    assert!(
        b.text_of("section.stream dd.rows")
            .await
            .parse::<u64>()
            .is_ok()
    );
    b.screenshot("streams.png").await;

    // The API link opens the reference, not raw JSON.
    b.go(&format!("{web}/api")).await;
    assert!(b.text_of("h1").await.contains("REST API reference"));
    b.find("section.api-op").await;
    b.screenshot("api.png").await;

    // The Query page: a table name from the list goes into the box, a
    // query shows its rows and a bar chart.
    b.go(&format!("{web}/query")).await;
    let sql = b.find("#sql").await;
    b.fill(&sql, "SELECT * FROM ").await;
    let name = b.find("button.insert[data-insert='people']").await;
    b.click(&name).await;
    let value = b
        .call(
            reqwest::Method::GET,
            &format!("/element/{sql}/property/value"),
            None,
        )
        .await;
    assert_eq!(value, "SELECT * FROM people");
    b.fill(
        &sql,
        "SELECT nation, count(*) AS people, avg(age) AS mean_age FROM people GROUP BY nation ORDER BY people DESC",
    )
    .await;
    let run = b.find("#run-query").await;
    b.click(&run).await;
    assert_eq!(
        b.text_of("#query-result tbody tr:first-child td").await,
        "FR"
    );
    assert!(b.text_of("#query-summary").await.starts_with("3 rows"));
    b.find("#query-chart rect.bar").await;
    b.screenshot("query.png").await;

    // A Lambda view's live layer from the list of views; the answer says
    // what it is made of.
    let sql = b.find("#sql").await;
    b.fill(&sql, "SELECT count(*) AS nations FROM ").await;
    let live = b
        .find("#lake-views button.insert[data-insert='live.users_by_nation']")
        .await;
    b.click(&live).await;
    let run = b.find("#run-query").await;
    b.click(&run).await;
    let made_of = b.text_of("p.made-of, #query-error").await;
    assert!(made_of.starts_with("live.users_by_nation = "), "{made_of}");

    b.call(reqwest::Method::DELETE, "", None).await;
}
