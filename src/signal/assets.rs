//! The bundled browser client: every file under `client/`, compiled into the
//! binary, and the routes that serve them.
//!
//! [`ASSETS`] is the one table of those files. The client is plain ES modules
//! with no build step, so a new file under `client/` needs only a row here;
//! the test at the bottom fails while one is missing.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One file of the client.
struct Asset {
    /// The URL path it is served at.
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The row for `client/<file>`, served at `/<file>`.
macro_rules! client_file {
    ($file:literal, $content_type:expr) => {
        Asset {
            path: concat!("/", $file),
            content_type: $content_type,
            body: include_str!(concat!("../../client/", $file)),
        }
    };
}

/// Every file under `client/`; `index.html` is served at `/`.
static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_str!("../../client/index.html"),
    },
    client_file!("style.css", CSS),
    client_file!("adaptive.js", JS),
    client_file!("app.js", JS),
    client_file!("chat.js", JS),
    client_file!("data.js", JS),
    client_file!("devices.js", JS),
    client_file!("ice.js", JS),
    client_file!("log.js", JS),
    client_file!("pages.js", JS),
    client_file!("participants.js", JS),
    client_file!("publish.js", JS),
    client_file!("session.js", JS),
    client_file!("signaling.js", JS),
    client_file!("simulcast.js", JS),
    client_file!("speakers.js", JS),
    client_file!("stats.js", JS),
    client_file!("subscribe.js", JS),
    client_file!("tiles.js", JS),
];

/// A `GET` (and `HEAD`) route for every client file. Any other path is left
/// to the router's fallback, a 404.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { asset.response() }))
    })
}

impl Asset {
    /// Revalidated on every load (`no-cache`), so a page never mixes files of
    /// a new server version with cached older ones.
    fn response(&self) -> impl IntoResponse {
        (
            [
                (header::CONTENT_TYPE, self.content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            self.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::StatusCode;

    /// The path and content type a file under `client/` must be served with.
    fn expected_route(file_name: &str) -> (String, &'static str) {
        let path = match file_name {
            "index.html" => "/".to_string(),
            other => format!("/{other}"),
        };
        let content_type = match file_name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => HTML,
            Some("js") => JS,
            Some("css") => CSS,
            _ => panic!("client/{file_name}: no content type for this kind of file"),
        };
        (path, content_type)
    }

    #[test]
    fn every_client_file_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/client");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).expect("read client/") {
            let entry = entry.expect("client/ entry");
            let name = entry.file_name().into_string().expect("UTF-8 file name");
            let (path, content_type) = expected_route(&name);
            let asset = ASSETS
                .iter()
                .find(|a| a.path == path)
                .unwrap_or_else(|| panic!("client/{name} is not in ASSETS (as {path})"));
            let on_disk = std::fs::read_to_string(entry.path()).expect("read client file");
            assert!(asset.body == on_disk, "{path} does not serve client/{name}");
            assert_eq!(asset.content_type, content_type, "content type of {path}");
            files += 1;
        }
        assert_eq!(
            files,
            ASSETS.len(),
            "ASSETS has rows for files not in client/"
        );
    }

    #[test]
    fn files_are_served_with_their_type_and_no_cache() {
        let app_js = ASSETS.iter().find(|a| a.path == "/app.js").unwrap();
        let response = app_js.response().into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], JS);
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    }
}
