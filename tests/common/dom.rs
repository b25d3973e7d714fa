//! Reading the DOM Chromium printed (`common::chromium`): an element's
//! text and the raw API value a page keeps beside it (`data-value`), the
//! `<body>` markers a page settles, the rows of a table; and the
//! screenshot's size. Plain string search over the serialized DOM, which
//! Chromium writes in one fixed form (attributes double-quoted, text
//! escaped).

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A rendered value: its text, and the raw API value the page kept
/// beside it (`data-value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub value: Option<String>,
}

impl Cell {
    /// The raw value as a decimal (money keeps the API's exact string).
    pub fn decimal(&self) -> Decimal {
        let v = self.value.as_deref().unwrap_or_else(|| panic!("{self:?}"));
        Decimal::from_str(v).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }

    /// The raw value, or empty.
    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// Text as it was before Chromium escaped it.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in an opening tag's text.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[at..].find('"')?;
    Some(unescape(&tag[at..at + len]))
}

/// The element with `id`: its text (inner markup included) and
/// `data-value`.
pub fn element(dom: &str, id: &str) -> Cell {
    let hit = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let start = dom[..hit].rfind('<').unwrap();
    let open_end = hit + dom[hit..].find('>').unwrap();
    let tag = &dom[start..open_end];
    let name = tag[1..].split_whitespace().next().unwrap();
    let text_end = open_end + dom[open_end..].find(&format!("</{name}>")).unwrap();
    Cell {
        text: unescape(&dom[open_end + 1..text_end]),
        value: attr(tag, "data-value"),
    }
}

/// The `<body>` tag's attribute `name`, or empty.
pub fn body(dom: &str, name: &str) -> String {
    let start = dom.find("<body").expect("a body");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    attr(tag, name).unwrap_or_default()
}

/// The markup of the element with `id`, from its opening tag to the end of
/// its `section` (for the panels, which are sections).
pub fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let from = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    &dom[from..from + dom[from..].find("</section>").unwrap()]
}

/// The cells of each row of the first `<tbody>` after `#id`.
pub fn rows(dom: &str, id: &str) -> Vec<Vec<Cell>> {
    let from = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &dom[from..];
    let tbody = &rest[rest.find("<tbody>").unwrap()..rest.find("</tbody>").unwrap()];
    tbody
        .split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let open_end = td.find('>').unwrap();
                    let text_end = td.find("</td>").unwrap();
                    Cell {
                        text: unescape(&td[open_end + 1..text_end]),
                        value: attr(&td[..open_end], "data-value"),
                    }
                })
                .collect()
        })
        .collect()
}

/// `target/`, where screenshots go.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf()
}

/// Width and height of a PNG, from its header.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}
