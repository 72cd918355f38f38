//! A small W3C WebDriver client over reqwest, driving Debian's `chromium` through `chromedriver`.
//! Only what the browser tests use: navigate, find, type, click, run a script, resize, screenshot, and
//! ChromeDriver's logs (console messages, and the network requests from the performance log).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts them.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A running chromedriver with one browser session.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session quits the browser; then the driver goes.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = reqwest::Client::new().delete(url).timeout(Duration::from_secs(5)).send().await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether the browser and its driver are installed.
pub fn available() -> bool {
    Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Start chromedriver and a headless Chromium of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            if let Some(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-default-apps",
                         format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {res}")).to_owned();
        Browser { driver, http, base, session }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "webdriver {path}: {status} {v}");
        v["value"].clone()
    }

    /// Go to a URL and wait for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching a CSS selector, waiting up to 5 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let res =
                self.http.post(&url).json(&json!({"using": "css selector", "value": css})).send().await.expect("find");
            if res.status().is_success() {
                let v: Value = res.json().await.expect("json");
                return v["value"][ELEMENT].as_str().expect("element id").to_owned();
            }
            assert!(Instant::now() < deadline, "no element matches `{css}`; page: {}", self.text().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Type into the element matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    /// Send a file path to a file input.
    pub async fn attach(&self, css: &str, path: &Path) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": path.display().to_string()})),
        )
        .await;
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
    }

    /// Run a script; returns its value.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''", json!([]))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        self.script("return location.pathname + location.search", json!([])).await.as_str().unwrap_or("").to_owned()
    }

    /// Set the viewport to `width` x `height` CSS pixels. Through the DevTools protocol rather than the
    /// window: a desktop Chromium window cannot be narrower than about 500 pixels, a phone is 390.
    pub async fn resize(&self, width: u32, height: u32) {
        let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600});
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params})),
        )
        .await;
    }

    /// A PNG of the whole page (the viewport is stretched to the page's height for the shot).
    pub async fn screenshot(&self, file: &Path) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("png");
        std::fs::write(file, bytes).expect("write screenshot");
    }

    /// Give the browser a virtual authenticator (W3C WebAuthn §11, through ChromeDriver): a platform
    /// authenticator with resident keys that always verifies the person, as a fingerprint reader would.
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/webauthn/authenticator",
                Some(json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                            "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true})),
            )
            .await;
        v.as_str().expect("authenticator id").to_owned()
    }

    /// The credentials a virtual authenticator holds.
    pub async fn virtual_credentials(&self, authenticator: &str) -> Vec<Value> {
        let v = self
            .call(reqwest::Method::GET, &format!("/webauthn/authenticator/{authenticator}/credentials"), None)
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Console messages since the last call: (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let v = self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (e["level"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// URLs of the network requests the browser made since the last call.
    pub async fn requests(&self) -> Vec<String> {
        let v = self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "performance"}))).await;
        let mut out = Vec::new();
        for e in v.as_array().into_iter().flatten() {
            let Some(m) = e["message"].as_str() else { continue };
            let Ok(m) = serde_json::from_str::<Value>(m) else { continue };
            if m["message"]["method"] == "Network.requestWillBeSent"
                && let Some(u) = m["message"]["params"]["request"]["url"].as_str()
            {
                out.push(u.to_owned());
            }
        }
        out
    }
}
