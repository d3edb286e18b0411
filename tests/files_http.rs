//! `GET /files` and `GET /files/{name}` over real HTTP, serving what the TCP
//! protocol stored, from both the memory and the directory store.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use pixpress::files::{open, FileRepo, StorageSettings};
use pixpress::pipeline::Limits;
use pixpress::protocols::tcp::{serve, TcpSettings};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 77]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn http(store: Arc<dyn FileRepo>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = pixpress::protocols::http::files::routes(store);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// PUT over the TCP protocol, with a pickle written by serde-pickle.
async fn tcp_put(store: Arc<dyn FileRepo>, name: &str, data: &[u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        store,
        TcpSettings::default(),
        Limits::default(),
        pixpress::protocols::per_client::PerClient::default(),
        std::future::pending(),
    ));
    use serde_pickle::{HashableValue as K, Value as V};
    let mut m = std::collections::BTreeMap::new();
    m.insert(K::String("COMMAND".into()), V::String("PUT".into()));
    m.insert(K::String("FILENAME".into()), V::String(name.into()));
    m.insert(K::String("FILE_DATA".into()), V::Bytes(data.to_vec()));
    let body = serde_pickle::value_to_vec(&V::Dict(m), serde_pickle::SerOptions::new()).unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).await.unwrap();
    let V::Dict(reply) = serde_pickle::value_from_slice(&reply, Default::default()).unwrap() else {
        panic!("not a dict")
    };
    match &reply[&K::String("STATUS".into())] {
        V::String(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

async fn serves_what_tcp_stored(store: Arc<dyn FileRepo>) {
    let base = http(Arc::clone(&store)).await;
    let client = reqwest::Client::new();

    let empty: Value = client
        .get(format!("{base}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({ "files": [] }));

    let data = png();
    assert_eq!(tcp_put(Arc::clone(&store), "shared.png", &data).await, "OK");
    store
        .put("b.jpg", Bytes::from_static(b"\xff\xd8\xff\xe0 not really"))
        .await
        .unwrap();

    let list: Value = client
        .get(format!("{base}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list,
        json!({ "files": [
            { "name": "b.jpg", "size": 15 },
            { "name": "shared.png", "size": data.len() },
        ]})
    );

    let got = client
        .get(format!("{base}/files/shared.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    assert_eq!(got.bytes().await.unwrap(), data);
    let jpg = client
        .get(format!("{base}/files/b.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(jpg.headers()["content-type"], "image/jpeg");

    let missing = client
        .get(format!("{base}/files/nope.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("nope.png"));

    // An encoded slash reaches the handler as part of the name and is refused.
    let escape = client
        .get(format!("{base}/files/..%2Fsecret.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 400);
    let body: Value = escape.json().await.unwrap();
    assert_eq!(body["error"], "invalid_name");
}

#[tokio::test]
async fn memory_store_files_are_served_over_http() {
    let store = open(&StorageSettings::default()).unwrap();
    serves_what_tcp_stored(store).await;
}

#[tokio::test]
async fn directory_store_files_are_served_over_http_and_kept_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StorageSettings {
        dir: Some(dir.path().to_owned()),
        ..StorageSettings::default()
    };
    serves_what_tcp_stored(open(&settings).unwrap()).await;
    assert_eq!(std::fs::read(dir.path().join("shared.png")).unwrap(), png());
    // Reopening finds the same files.
    let names: Vec<_> = open(&settings)
        .unwrap()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["b.jpg", "shared.png"]);
}
