//! The TCP image-sharing protocol against a real server on 127.0.0.1, with
//! Python's `pickle` as the client (`scripts/clients/share_client.py` and
//! small stdlib scripts), raw sockets for framing abuse, and property tests
//! for the frame reader and the pickle gate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pixpress::files::{FileRepo, MemoryStore, Quota};
use pixpress::pipeline::Limits;
use pixpress::protocols::tcp::frame::{read_frame, FrameLimits};
use pixpress::protocols::tcp::handler::EMPTY_LIST_TEXT;
use pixpress::protocols::tcp::{decode_request, serve, TcpSettings};
use proptest::prelude::*;
use serde_json::Value as Json;
use serde_pickle::{HashableValue, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------
// Allocation accounting for the property tests: bytes allocated by the
// current thread, and the peak since the last reset.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak bytes it had allocated.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

// ---------------------------------------------------------------------------
// Server and clients.

const TIMEOUT: Duration = Duration::from_secs(30);

struct Server {
    addr: SocketAddr,
    store: Arc<dyn FileRepo>,
    _stop: oneshot::Sender<()>,
}

async fn start(settings: TcpSettings) -> Server {
    start_with_limits(settings, Limits::default()).await
}

async fn start_with_limits(settings: TcpSettings, limits: Limits) -> Server {
    let store: Arc<dyn FileRepo> = Arc::new(MemoryStore::new(Quota::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        Arc::clone(&store),
        settings,
        limits,
        pixpress::protocols::per_client::PerClient::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        store,
        _stop: stop,
    }
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/clients/share_client.py")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn python(args: Vec<String>) -> Run {
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .args(&args)
                .output()
                .expect("python3 runs")
        }),
    )
    .await
    .expect("python finishes in time")
    .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn share_client(server: &Server, args: &[&str]) -> Run {
    let mut all = vec![
        client_script().display().to_string(),
        "--port".to_owned(),
        server.addr.port().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    python(all).await
}

/// Sends one frame built by a Python expression (`body`, with `os`,
/// `pickle`, `MARKER` and `data` = bytes.fromhex(DATA) in scope) and prints
/// the reply as JSON: each key with its Python type name and value.
const PY_EXCHANGE: &str = r#"
import json, os, pickle, socket, struct, sys
port, MARKER, DATA, expr = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = bytes.fromhex(DATA)
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))
class Plain:
    def __init__(self):
        self.x = 1
class WithState:
    def __reduce__(self):
        return (dict, (), {"COMMAND": "LIST"})
def req(command, name=None, file_data=None, **extra):
    m = {"COMMAND": command, "STATUS": "REQUEST", "DETAILS": None, "FILENAME": name, "FILE_DATA": file_data}
    m.update(extra)
    return m
body = eval(expr)
def recv_exact(s, n):
    out = b""
    while len(out) < n:
        c = s.recv(n - len(out))
        if not c:
            raise SystemExit("connection closed")
        out += c
    return out
with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
    s.sendall(struct.pack(">I", len(body)) + body)
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    reply = pickle.loads(recv_exact(s, n))
out = {}
for k, v in reply.items():
    out[k] = [type(v).__name__, v.hex() if isinstance(v, bytes) else v]
print(json.dumps(out))
"#;

struct Exchange {
    marker: tempfile::TempDir,
}

impl Exchange {
    fn new() -> Self {
        Self {
            marker: tempfile::tempdir().unwrap(),
        }
    }
    fn marker_path(&self) -> PathBuf {
        self.marker.path().join("marker")
    }
    /// Sends the pickle built by `expr` and returns the reply fields.
    async fn send(
        &self,
        server: &Server,
        expr: &str,
        data: &[u8],
    ) -> BTreeMap<String, (String, Json)> {
        let run = python(vec![
            "-c".into(),
            PY_EXCHANGE.into(),
            server.addr.port().to_string(),
            self.marker_path().display().to_string(),
            hex(data),
            expr.into(),
        ])
        .await;
        assert_eq!(run.code, 0, "exchange {expr} failed: {}", run.stderr);
        let json: BTreeMap<String, (String, Json)> =
            serde_json::from_str(run.stdout.trim()).unwrap();
        json
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_error(reply: &BTreeMap<String, (String, Json)>, needle: &str) {
    assert_eq!(
        reply["STATUS"],
        ("str".to_owned(), Json::from("ERROR")),
        "{reply:?}"
    );
    let details = reply["DETAILS"].1.as_str().unwrap_or_default();
    assert!(
        details.contains(needle),
        "DETAILS {details:?} should mention {needle:?}"
    );
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 13) as u8, 200])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, 90, (y * 5) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn gif() -> Vec<u8> {
    // A 1x1 GIF (written by hand: header, screen, colour table, image, end).
    let mut g = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00".to_vec();
    g.extend_from_slice(b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;");
    g
}

/// A request pickled by serde-pickle (protocol 3), for raw-socket tests.
fn rust_request(command: &str) -> Vec<u8> {
    let mut m = BTreeMap::new();
    let k = |s: &str| HashableValue::String(s.into());
    m.insert(k("COMMAND"), Value::String(command.into()));
    m.insert(k("STATUS"), Value::String("REQUEST".into()));
    m.insert(k("DETAILS"), Value::None);
    m.insert(k("FILENAME"), Value::None);
    m.insert(k("FILE_DATA"), Value::None);
    serde_pickle::value_to_vec(&Value::Dict(m), serde_pickle::SerOptions::new()).unwrap()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Reads one reply frame; `None` if the connection closed first.
async fn read_reply(s: &mut TcpStream) -> Option<BTreeMap<String, Value>> {
    let mut len = [0u8; 4];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut len))
        .await
        .expect("reply in time")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut body))
        .await
        .expect("reply in time")
        .ok()?;
    let Value::Dict(map) =
        serde_pickle::value_from_slice(&body, serde_pickle::DeOptions::new()).unwrap()
    else {
        panic!("reply is not a dict")
    };
    Some(
        map.into_iter()
            .map(|(k, v)| match k {
                HashableValue::String(k) => (k, v),
                other => panic!("key {other:?}"),
            })
            .collect(),
    )
}

fn status(reply: &BTreeMap<String, Value>) -> &str {
    match &reply["STATUS"] {
        Value::String(s) => s,
        other => panic!("STATUS {other:?}"),
    }
}

fn details(reply: &BTreeMap<String, Value>) -> String {
    match &reply["DETAILS"] {
        Value::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Waits until the server closes `s` (reading and discarding any replies).
async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(TIMEOUT, s.read(&mut buf))
            .await
            .expect("closed in time")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A LIST was answered: the names, or the empty store's text.
fn assert_list_answer(reply: &BTreeMap<String, Value>) {
    assert!(
        status(reply) == "OK" || details(reply) == EMPTY_LIST_TEXT,
        "{reply:?}"
    );
}

/// The server answers a LIST on a new connection.
async fn list_answers(addr: SocketAddr) -> BTreeMap<String, Value> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(&rust_request("LIST"))).await.unwrap();
    let reply = read_reply(&mut s).await.expect("a reply");
    assert_list_answer(&reply);
    reply
}

// ---------------------------------------------------------------------------
// Round trips with the real client.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_round_trip_with_pickle_protocols_2_4_5() {
    let server = start(TcpSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();

    let empty = share_client(&server, &["list"]).await;
    assert_eq!(empty.code, 1, "an empty store is an ERROR reply");
    assert_eq!(empty.stderr.trim(), format!("ERROR: {EMPTY_LIST_TEXT}"));

    let images = [("png", png(37, 23)), ("jpg", jpeg(40, 30))];
    let mut names = Vec::new();
    for protocol in ["2", "4", "5"] {
        for (ext, data) in &images {
            let name = format!("p{protocol}-image.{ext}");
            let src = dir.path().join(format!("src-{name}"));
            std::fs::write(&src, data).unwrap();
            let put = share_client(
                &server,
                &[
                    "--protocol",
                    protocol,
                    "put",
                    src.to_str().unwrap(),
                    "--name",
                    &name,
                ],
            )
            .await;
            assert_eq!(put.code, 0, "put {name}: {}", put.stderr);
            assert!(put.stdout.contains(&name), "{}", put.stdout);

            let out = dir.path().join(format!("out-{name}"));
            let get = share_client(
                &server,
                &[
                    "--protocol",
                    protocol,
                    "get",
                    &name,
                    "-o",
                    out.to_str().unwrap(),
                ],
            )
            .await;
            assert_eq!(get.code, 0, "get {name}: {}", get.stderr);
            assert_eq!(
                &std::fs::read(&out).unwrap(),
                data,
                "{name} comes back byte for byte"
            );
            names.push(name);
        }
    }
    names.sort();
    let list = share_client(&server, &["list"]).await;
    assert_eq!(list.code, 0);
    assert_eq!(list.stdout.lines().collect::<Vec<_>>(), names);
    assert_eq!(server.store.list().await.unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_keep_python_types_and_all_bytes_values() {
    let server = start(TcpSettings::default()).await;
    let ex = Exchange::new();
    let empty = ex
        .send(&server, "pickle.dumps(req('LIST'), protocol=2)", b"")
        .await;
    assert_eq!(empty["STATUS"], ("str".into(), Json::from("ERROR")));
    assert_eq!(empty["COMMAND"], ("str".into(), Json::from("LIST")));
    assert_eq!(
        empty["DETAILS"],
        ("str".into(), Json::from(EMPTY_LIST_TEXT))
    );
    assert_eq!(empty["FILENAME"], ("NoneType".into(), Json::Null));
    assert_eq!(empty["FILE_DATA"], ("NoneType".into(), Json::Null));

    // Protocol 2 writes bytes as _codecs.encode(latin-1 text): every byte
    // value must survive, as must a bytearray (protocol 4, a constructor call).
    let data = png(5, 5);
    let put = ex
        .send(
            &server,
            "pickle.dumps(req('PUT', 'all.png', data), protocol=2)",
            &data,
        )
        .await;
    assert_eq!(put["STATUS"].1, Json::from("OK"), "{put:?}");
    let put = ex
        .send(
            &server,
            "pickle.dumps(req('PUT', 'ba.png', bytearray(data)), protocol=4)",
            &data,
        )
        .await;
    assert_eq!(put["STATUS"].1, Json::from("OK"), "{put:?}");
    for name in ["all.png", "ba.png"] {
        let got = ex
            .send(
                &server,
                &format!("pickle.dumps(req('GET', '{name}'), protocol=3)"),
                b"",
            )
            .await;
        assert_eq!(got["FILE_DATA"], ("bytes".into(), Json::from(hex(&data))));
        assert_eq!(got["FILENAME"], ("str".into(), Json::from(name)));
    }
    let list = ex
        .send(&server, "pickle.dumps(req('LIST'), protocol=5)", b"")
        .await;
    assert_eq!(list["STATUS"], ("str".into(), Json::from("OK")));
    assert_eq!(
        list["DETAILS"],
        ("str".into(), Json::from("all.png\nba.png"))
    );
}

/// The original project's client: `STATUS: None` in every request, pickles
/// of Python's default protocol, LIST read as one text of names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_clients_requests_work() {
    let server = start(TcpSettings::default()).await;
    let ex = Exchange::new();
    let original = |command: &str, rest: &str| {
        format!("pickle.dumps(dict(req({command}{rest}), STATUS=None))")
    };
    let data = png(6, 4);
    for name in ["b.png", "a.png"] {
        let put = ex
            .send(
                &server,
                &original("'PUT'", &format!(", '{name}', data")),
                &data,
            )
            .await;
        assert_eq!(put["STATUS"], ("str".into(), Json::from("OK")), "{put:?}");
        assert_eq!(put["FILENAME"], ("str".into(), Json::from(name)));
    }
    let list = ex.send(&server, &original("'LIST'", ""), b"").await;
    assert_eq!(list["STATUS"], ("str".into(), Json::from("OK")));
    let names = list["DETAILS"]
        .1
        .as_str()
        .unwrap()
        .split('\n')
        .collect::<Vec<_>>();
    assert_eq!(names, ["a.png", "b.png"]);
    let got = ex.send(&server, &original("'GET'", ", 'a.png'"), b"").await;
    assert_eq!(got["STATUS"], ("str".into(), Json::from("OK")));
    assert_eq!(got["FILE_DATA"], ("bytes".into(), Json::from(hex(&data))));
}

// ---------------------------------------------------------------------------
// PUT and GET errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_put_and_get_error_is_a_clear_error_reply() {
    let server = start(TcpSettings {
        max_name_len: 32,
        ..TcpSettings::default()
    })
    .await;
    let ex = Exchange::new();
    let png = png(8, 8);
    let jpeg = jpeg(8, 8);
    let gif = gif();
    let mut bad_png = png[..40].to_vec();
    bad_png.extend_from_slice(&[0u8; 64]);

    let ok = ex
        .send(&server, "pickle.dumps(req('PUT', 'dup.png', data))", &png)
        .await;
    assert_eq!(ok["STATUS"].1, Json::from("OK"), "{ok:?}");

    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("req('PUT', 'dup.png', data)", &png, "already exists"),
        ("req('PUT', 'DUP.png', b'')", b"", "missing or empty"),
        ("req('PUT', 'none.png', None)", b"", "missing or empty"),
        ("req('PUT', None, data)", &png, "needs a FILENAME"),
        ("req('PUT', '', data)", &png, "empty"),
        ("req('PUT', 'a/b.png', data)", &png, "path separator"),
        ("req('PUT', 'a\\\\b.png', data)", &png, "path separator"),
        ("req('PUT', '../up.png', data)", &png, "path separator"),
        ("req('PUT', '..png', data)", &png, "'..'"),
        ("req('PUT', '.hidden.png', data)", &png, "start with '.'"),
        (
            "req('PUT', 'bell\\x07.png', data)",
            &png,
            "control characters",
        ),
        (
            "req('PUT', 'new\\nline.png', data)",
            &png,
            "control characters",
        ),
        (
            "req('PUT', 'x' * 40 + '.png', data)",
            &png,
            "the limit is 32",
        ),
        (
            "req('PUT', 'image.gif', data)",
            &png,
            "must end in .jpg, .jpeg or .png",
        ),
        (
            "req('PUT', 'noext', data)",
            &png,
            "must end in .jpg, .jpeg or .png",
        ),
        (
            "req('PUT', 'png-as.jpg', data)",
            &png,
            "is a PNG image but FILENAME says JPEG",
        ),
        (
            "req('PUT', 'jpeg-as.png', data)",
            &jpeg,
            "is a JPEG image but FILENAME says PNG",
        ),
        (
            "req('PUT', 'text.png', data)",
            b"hello, not an image",
            "not a JPEG or PNG image",
        ),
        (
            "req('PUT', 'anim.png', data)",
            &gif,
            "is a GIF image: only JPEG and PNG",
        ),
        (
            "req('PUT', 'broken.png', data)",
            &bad_png,
            "not a valid image",
        ),
        (
            "req('PUT', 'str.png', 'text')",
            b"",
            "FILE_DATA must be bytes or None, not str",
        ),
        (
            "req('PUT', b'bytes.png', data)",
            &png,
            "FILENAME must be str or None, not bytes",
        ),
        (
            "req('GET', 'missing.png')",
            b"",
            "no file named \"missing.png\"",
        ),
        ("req('GET')", b"", "GET needs a FILENAME"),
        ("req('GET', '../../etc/passwd')", b"", "path separator"),
        (
            "req('DELETE', 'dup.png')",
            b"",
            "unknown COMMAND \"DELETE\"",
        ),
        ("req(None)", b"", "no COMMAND"),
        (
            "req('LIST', STATUS='OK')",
            b"",
            "STATUS of a request must be \"REQUEST\"",
        ),
        ("['LIST']", b"", "must be a dict, not list"),
        ("{1: 'LIST'}", b"", "keys must be text"),
    ];
    for (message, data, needle) in cases {
        for protocol in [2, 4] {
            let expr = format!("pickle.dumps({message}, protocol={protocol})");
            let reply = ex.send(&server, &expr, data).await;
            assert_error(&reply, needle);
        }
    }
    // Protocols 0 and 1 are refused by name.
    let reply = ex
        .send(&server, "pickle.dumps(req('LIST'), protocol=0)", b"")
        .await;
    assert_error(&reply, "protocol 2 to 5");
    let reply = ex
        .send(&server, "pickle.dumps(req('LIST'), protocol=1)", b"")
        .await;
    assert_error(&reply, "protocol 2 to 5");

    // Nothing but the first file was stored.
    let names: Vec<_> = server
        .store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["dup.png"]);
}

// ---------------------------------------------------------------------------
// Pickles that would import or call code.

#[tokio::test]
async fn a_put_image_over_the_servers_pixel_limits_is_refused_and_not_stored() {
    let limits = Limits {
        max_pixels: 1_000,
        ..Limits::default()
    };
    let server = start_with_limits(TcpSettings::default(), limits).await;
    let ex = Exchange::new();
    let big = ex
        .send(
            &server,
            "pickle.dumps(req('PUT', 'big.png', data))",
            &png(40, 40),
        )
        .await;
    assert_error(&big, "exceeds the limits");
    assert!(server.store.list().await.unwrap().is_empty());
    let small = ex
        .send(
            &server,
            "pickle.dumps(req('PUT', 'small.png', data))",
            &png(20, 20),
        )
        .await;
    assert_eq!(small["STATUS"].1, Json::from("OK"), "{small:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickles_that_would_run_code_get_an_error_and_never_run() {
    let server = start(TcpSettings::default()).await;
    let ex = Exchange::new();
    let mut cases: Vec<(String, &str)> = Vec::new();
    for protocol in 2..=5 {
        cases.push((
            format!("pickle.dumps(Evil(), protocol={protocol})"),
            "refused",
        ));
        cases.push((
            format!("pickle.dumps(req('LIST', 'x.png', Evil()), protocol={protocol})"),
            "refused",
        ));
        cases.push((
            format!("pickle.dumps(req('LIST', Evil()), protocol={protocol})"),
            "refused",
        ));
        cases.push((
            format!("pickle.dumps(req('LIST', extra=Plain()), protocol={protocol})"),
            "data only",
        ));
        cases.push((
            format!("pickle.dumps(WithState(), protocol={protocol})"),
            "data only",
        ));
        cases.push((
            format!("pickle.dumps(os.system, protocol={protocol})"),
            "refused",
        ));
    }
    // Hand-written streams: GLOBAL/REDUCE of eval, INST, OBJ, a STACK_GLOBAL
    // whose names are not literal text, a disguised constructor call, EXT1
    // and PERSID.
    let raw = [
        (
            r#"b"\x80\x02cbuiltins\neval\n(X\x1b\x00\x00\x00__import__('os').system('')tR.""#,
            "builtins.eval",
        ),
        (r#"b"\x80\x02(S'touch marker'\nios\nsystem\n.""#, "INST"),
        (r#"b"\x80\x02(cos\nsystem\nS'x'\no.""#, "os.system"),
        (r#"b"\x80\x04K\x01K\x02\x93.""#, "STACK_GLOBAL"),
        (
            r#"b"\x80\x02c__builtin__\nset\nX\x01\x00\x00\x00xX\x01\x00\x00\x00y\x86R.""#,
            "arguments Python never writes",
        ),
        (
            r#"b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00utf-8\x86R.""#,
            "arguments Python never writes",
        ),
        (r#"b"\x80\x02\x82\x01.""#, "EXT1"),
        (r#"b"\x80\x02P1\n.""#, "PERSID"),
        (r#"b"\x80\x02}b.""#, "BUILD"),
    ];
    for (expr, needle) in raw {
        cases.push((expr.to_owned(), needle));
    }
    for (expr, needle) in &cases {
        let reply = ex.send(&server, expr, b"").await;
        assert_error(&reply, needle);
        assert!(!ex.marker_path().exists(), "{expr} ran code on the server");
    }
    // The same os.system pickle really does run code in Python: the marker
    // check above is meaningful.
    let local = python(vec![
        "-c".into(),
        format!(
            "import os, pickle\nclass E:\n    def __reduce__(self):\n        return (os.system, ('touch {}',))\npickle.loads(pickle.dumps(E()))",
            ex.marker_path().display()
        ),
    ])
    .await;
    assert_eq!(local.code, 0, "{}", local.stderr);
    assert!(ex.marker_path().exists());
    // And the server keeps serving.
    list_answers(server.addr).await;
}

// ---------------------------------------------------------------------------
// Framing abuse, timeouts and the connection limit.

#[tokio::test]
async fn a_4_gb_length_prefix_closes_the_connection_without_reading() {
    let server = start(TcpSettings::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let reply = read_reply(&mut s)
        .await
        .expect("an error reply before closing");
    assert_eq!(status(&reply), "ERROR");
    assert!(
        details(&reply).contains("exceeds the limit"),
        "{}",
        details(&reply)
    );
    assert_closed(&mut s).await;

    // An HTTP request is read as a huge length prefix too.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_closed(&mut s).await;
    list_answers(server.addr).await;
}

#[tokio::test]
async fn garbage_frames_get_errors_and_the_connection_stays_usable() {
    let server = start(TcpSettings::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let garbage: [&[u8]; 5] = [
        b"\x00\x01\x02garbage!",
        b"",
        b"\x80\x04\x95",
        b"\x80\x02]\x94(K\x01e",
        b"\x80\x02N.trailing",
    ];
    for body in garbage {
        s.write_all(&frame(body)).await.unwrap();
        let reply = read_reply(&mut s).await.expect("a reply");
        assert_eq!(status(&reply), "ERROR", "{body:?}");
        assert!(!details(&reply).is_empty());
    }
    s.write_all(&frame(&rust_request("LIST"))).await.unwrap();
    let reply = read_reply(&mut s).await.expect("a reply");
    assert_list_answer(&reply);
}

#[tokio::test]
async fn a_stalled_half_frame_is_closed_while_others_are_served() {
    let server = start(TcpSettings {
        read_timeout_secs: 1,
        ..TcpSettings::default()
    })
    .await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let request = frame(&rust_request("LIST"));
    stalled
        .write_all(&request[..request.len() / 2])
        .await
        .unwrap();
    // Another client is served while the first one stalls...
    list_answers(server.addr).await;
    // ...and the stalled one is closed by the read timeout, with no reply.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, stalled.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        read.is_err() || buf.is_empty(),
        "no reply to half a frame: {buf:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let server = start(TcpSettings {
        idle_timeout_secs: 1,
        ..TcpSettings::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&frame(&rust_request("LIST"))).await.unwrap();
    assert_list_answer(&read_reply(&mut s).await.unwrap());
    assert_closed(&mut s).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_told_the_server_is_busy() {
    let server = start(TcpSettings {
        max_connections: 2,
        ..TcpSettings::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&frame(&rust_request("LIST"))).await.unwrap();
        assert_list_answer(&read_reply(&mut s).await.unwrap());
        held.push(s);
    }
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let reply = read_reply(&mut third).await.expect("a busy reply");
    assert_eq!(status(&reply), "ERROR");
    assert!(details(&reply).contains("busy"));
    assert_closed(&mut third).await;

    // The held connections still work; closing one frees its place.
    held[0]
        .write_all(&frame(&rust_request("LIST")))
        .await
        .unwrap();
    assert_list_answer(&read_reply(&mut held[0]).await.unwrap());
    drop(held.remove(0));
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            s.write_all(&frame(&rust_request("LIST"))).await.unwrap();
            match read_reply(&mut s).await {
                Some(r) if details(&r) == EMPTY_LIST_TEXT => break,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("a freed place is reused");
}

// ---------------------------------------------------------------------------
// The pickle gate and the frame reader under random input.

/// Python 3.11 pickles of a PUT request with protocols 2, 4 and 5, and a
/// protocol 2 dict holding empty bytes, bytearray, set and frozenset values.
const SEEDS: [&str; 4] = [
    "80027d7100285807000000434f4d4d414e44710158030000005055547102580600000053544154555371035807000000524551554553547104580700000044455441494c5371054e580800000046494c454e414d4571065805000000612e706e677107580900000046494c455f444154417108635f636f646563730a656e636f64650a71095808000000c289504e47c3bf00710a58060000006c6174696e31710b86710c52710d752e",
    "8004955b000000000000007d94288c07434f4d4d414e44948c03505554948c06535441545553948c0752455155455354948c0744455441494c53944e8c0846494c454e414d45948c05612e706e67948c0946494c455f4441544194430689504e47ff0094752e",
    "8005955b000000000000007d94288c07434f4d4d414e44948c03505554948c06535441545553948c0752455155455354948c0744455441494c53944e8c0846494c454e414d45948c05612e706e67948c0946494c455f4441544194430689504e47ff0094752e",
    "80027d7100285807000000434f4d4d414e44710158030000005055547102580800000046494c454e414d4571035805000000652e706e677104580900000046494c455f444154417105635f5f6275696c74696e5f5f0a62797465730a7106295271075801000000797108680758010000007a7109635f5f6275696c74696e5f5f0a6279746561727261790a710a635f636f646563730a656e636f64650a710b58020000006162710c58060000006c6174696e31710d86710e52710f8571105271115801000000737112635f5f6275696c74696e5f5f0a7365740a71135d71144b01618571155271165801000000667117635f5f6275696c74696e5f5f0a66726f7a656e7365740a71185d71194b026185711a52711b752e",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn python_seeds_decode_as_expected() {
    for seed in &SEEDS[..3] {
        let req = decode_request(&unhex(seed)).unwrap();
        assert_eq!(req.command, pixpress::protocols::tcp::Command::Put);
        assert_eq!(req.filename.as_deref(), Some("a.png"));
        assert_eq!(req.file_data.as_deref(), Some(&b"\x89PNG\xff\x00"[..]));
    }
    // Protocol 2's bytes() for empty bytes is read as empty bytes, and the
    // other data constructors are accepted.
    let req = decode_request(&unhex(SEEDS[3])).unwrap();
    assert_eq!(req.filename.as_deref(), Some("e.png"));
    assert_eq!(req.file_data.as_deref(), Some(&b""[..]));
}

#[test]
fn memo_bombs_are_refused_with_bounded_memory() {
    // A list holding a 1000-byte string, then 24 levels of "a list of the
    // previous list twice": 2^24 copies once expanded.
    let mut p = b"\x80\x04]\x94(B\xe8\x03\x00\x00".to_vec();
    p.extend(std::iter::repeat_n(b'x', 1000));
    p.extend_from_slice(b"e");
    for level in 0..24u32 {
        p.extend_from_slice(b"](j");
        p.extend_from_slice(&level.to_le_bytes());
        p.extend_from_slice(b"j");
        p.extend_from_slice(&level.to_le_bytes());
        p.extend_from_slice(b"e\x94");
    }
    p.extend_from_slice(b".");
    let (result, peak) = peak_allocation(|| decode_request(&p));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("too"), "{err}");
    assert!(peak < 1 << 20, "peak allocation {peak} bytes");

    // Deep nesting is refused before a recursive decoder could see it.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 99_999));
    deep.push(b'.');
    let (result, peak) = peak_allocation(|| decode_request(&deep));
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("too many containers"));
    assert!(peak < 4 << 20, "peak allocation {peak} bytes");
}

fn mutate(mut p: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, at, byte) in ops {
        if p.is_empty() {
            p.push(byte);
            continue;
        }
        let at = at % p.len();
        match kind % 4 {
            0 => p[at] = byte,
            1 => p.insert(at, byte),
            2 => {
                p.remove(at);
            }
            _ => p.truncate(at),
        }
    }
    p
}

fn check_decode(input: &[u8]) {
    let (_, peak) = peak_allocation(|| decode_request(input));
    // Decoded data is bounded by the frame: a few times its size plus a
    // fixed allowance for bookkeeping.
    assert!(
        peak <= 8 * input.len() + (2 << 20),
        "peak allocation {peak} bytes for a {} byte frame",
        input.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&body);
        let mut with_header = b"\x80\x04".to_vec();
        with_header.extend_from_slice(&body);
        check_decode(&with_header);
    }

    #[test]
    fn mutated_python_pickles_never_panic(
        seed in 0..SEEDS.len(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        check_decode(&mutate(unhex(SEEDS[seed]), &ops));
    }

    #[test]
    fn frame_reader_respects_the_limit(stream in proptest::collection::vec(any::<u8>(), 0..256)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let limits = FrameLimits {
            max_frame_bytes: 64,
            idle_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
        };
        let (frames, peak) = peak_allocation(|| rt.block_on(async {
            let mut input = stream.as_slice();
            let mut frames = Vec::new();
            while let Ok(body) = read_frame(&mut input, &limits).await {
                frames.push(body);
            }
            frames
        }));
        prop_assert!(frames.iter().all(|f| f.len() <= 64));
        prop_assert!(peak < 1 << 20);
    }
}
