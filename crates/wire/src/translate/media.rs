//! Images and documents between the formats: OpenAI `image_url` and `file` parts ⇄
//! Anthropic `image` and `document` blocks, data URLs, and the checks both APIs make.
//!
//! - `data:<media type>;base64,<data>` ⇄ `source.type = "base64"` with `media_type`.
//! - An `http(s)` image URL ⇄ `source.type = "url"`.
//! - A PDF as a data URL in a `file` part (`file.file_data`) ⇄ a `document` block with a
//!   base64 source; a plain-text document (`source.type = "text"`) becomes a text part.
//!
//! Uploaded-file references (`file_id`, `source.type = "file"`) and PDF URLs exist on
//! one side only and are refused by name.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::Unsupported;

/// The image media types both APIs accept.
pub const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The document media type both formats carry as base64 data.
const PDF: &str = "application/pdf";

/// A parsed `data:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    /// The base64 text, checked to decode.
    pub data: &'a str,
}

/// Parses `data:<media type>;base64,<data>`, checking that the data is valid base64.
/// The error says what is wrong, for a message that also names the field.
pub fn parse_data_url(url: &str) -> Result<DataUrl<'_>, String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| "a data URL must start with `data:`".to_owned())?;
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| "a data URL needs a `,` before its data".to_owned())?;
    let media_type = header.strip_suffix(";base64").ok_or_else(|| {
        format!("a data URL must be base64-encoded (`data:<type>;base64,…`), got `data:{header},…`")
    })?;
    if media_type.is_empty() {
        return Err("a data URL must name its media type".to_owned());
    }
    check_base64(data)?;
    Ok(DataUrl { media_type, data })
}

/// Checks that `data` is standard base64 (padding optional), without keeping the bytes.
pub fn check_base64(data: &str) -> Result<(), String> {
    if data.is_empty() {
        return Err("the base64 data is empty".to_owned());
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(data.as_bytes())
        .map(drop)
        .map_err(|error| format!("the data is not valid base64 ({error})"))
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Checks an OpenAI image URL (`image_url.url`): `http(s)`, or a base64 data URL
/// of an image type both APIs accept.
pub fn check_image_url(url: &str) -> Result<(), String> {
    if is_http_url(url) {
        return Ok(());
    }
    if !url.starts_with("data:") {
        return Err(format!(
            "`{}` is neither an http(s) URL nor a data URL",
            short(url)
        ));
    }
    let parsed = parse_data_url(url)?;
    check_image_media_type(parsed.media_type)
}

fn check_image_media_type(media_type: &str) -> Result<(), String> {
    if IMAGE_MEDIA_TYPES.contains(&media_type) {
        Ok(())
    } else {
        Err(format!(
            "media type `{media_type}` is not supported; expected one of {}",
            IMAGE_MEDIA_TYPES.join(", ")
        ))
    }
}

/// Checks an Anthropic `image` or `document` block's `source`.
pub fn check_anthropic_source(kind: &str, source: &Value) -> Result<(), String> {
    let source_type = source.get("type").and_then(Value::as_str).unwrap_or("");
    match source_type {
        "base64" => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .ok_or_else(|| "source.media_type: Field required".to_owned())?;
            if kind == "image" {
                check_image_media_type(media_type).map_err(|e| format!("source.media_type: {e}"))?;
            }
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| "source.data: Field required".to_owned())?;
            check_base64(data).map_err(|e| format!("source.data: {e}"))
        }
        "url" => match source.get("url").and_then(Value::as_str) {
            Some(url) if is_http_url(url) => Ok(()),
            Some(url) => Err(format!("source.url: `{}` is not an http(s) URL", short(url))),
            None => Err("source.url: Field required".to_owned()),
        },
        "text" | "content" | "file" => Ok(()),
        other => Err(format!(
            "source.type: `{other}` is not a valid source type; expected base64, url, text, content or file"
        )),
    }
}

/// An OpenAI user content part that is not text, as an Anthropic block.
/// `path` names the part in errors (`messages[1].content[2]`).
pub(super) fn openai_part_to_anthropic(path: &str, part: &Value) -> Result<Value, Unsupported> {
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    match kind {
        "image_url" => {
            let url = part
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| Unsupported::new(format!("{path}.image_url.url is missing")))?;
            let source = if is_http_url(url) {
                json!({ "type": "url", "url": url })
            } else {
                let parsed = parse_data_url(url)
                    .map_err(|e| Unsupported::new(format!("{path}.image_url.url: {e}")))?;
                json!({ "type": "base64", "media_type": parsed.media_type, "data": parsed.data })
            };
            Ok(json!({ "type": "image", "source": source }))
        }
        "file" => {
            let file = part.get("file").cloned().unwrap_or(Value::Null);
            let Some(file_data) = file.get("file_data").and_then(Value::as_str) else {
                return Err(Unsupported::new(format!(
                    "{path}.file: only inline `file_data` can be translated; an uploaded `file_id` exists on OpenAI alone"
                )));
            };
            let parsed = parse_data_url(file_data)
                .map_err(|e| Unsupported::new(format!("{path}.file.file_data: {e}")))?;
            if parsed.media_type != PDF {
                return Err(Unsupported::new(format!(
                    "{path}.file.file_data: media type `{}` has no Anthropic document form; expected {PDF}",
                    parsed.media_type
                )));
            }
            let mut block = json!({
                "type": "document",
                "source": { "type": "base64", "media_type": PDF, "data": parsed.data },
            });
            if let Some(name) = file.get("filename").and_then(Value::as_str) {
                block["title"] = Value::from(name);
            }
            Ok(block)
        }
        other => Err(Unsupported::new(format!(
            "{path}: `{other}` parts have no Anthropic equivalent; text, image_url and file parts are translated"
        ))),
    }
}

/// An Anthropic `image` or `document` block as an OpenAI content part.
pub(super) fn anthropic_media_to_openai(
    path: &str,
    kind: &str,
    source: &Value,
    extra: &Map<String, Value>,
) -> Result<Value, Unsupported> {
    let source_type = source.get("type").and_then(Value::as_str).unwrap_or("");
    let text_field = |name: &str| source.get(name).and_then(Value::as_str).unwrap_or("");
    match (kind, source_type) {
        ("image", "base64") => Ok(json!({
            "type": "image_url",
            "image_url": { "url": format!("data:{};base64,{}", text_field("media_type"), text_field("data")) },
        })),
        ("image", "url") => Ok(json!({
            "type": "image_url",
            "image_url": { "url": text_field("url") },
        })),
        ("document", "base64") if text_field("media_type") == PDF => {
            let title = extra
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({
                "type": "file",
                "file": {
                    "filename": title,
                    "file_data": format!("data:{PDF};base64,{}", text_field("data")),
                },
            }))
        }
        ("document", "text") => Ok(json!({ "type": "text", "text": text_field("data") })),
        _ => Err(Unsupported::new(format!(
            "{path}: a `{kind}` block with source.type `{source_type}` has no OpenAI Chat Completions form; base64 and URL images, base64 PDFs and text documents are translated"
        ))),
    }
}

fn short(text: &str) -> String {
    super::shorten(text, 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 1×1 transparent PNG, as base64 (the bytes of the smallest valid PNG).
    const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

    #[test]
    fn data_urls_are_parsed_and_checked() {
        let url = format!("data:image/png;base64,{PNG}");
        assert_eq!(
            parse_data_url(&url).unwrap(),
            DataUrl {
                media_type: "image/png",
                data: PNG
            }
        );
        assert!(check_image_url(&url).is_ok());
        assert!(check_image_url("https://example.com/cat.png").is_ok());
        for (url, needle) in [
            ("data:image/png;base64,@@@", "not valid base64"),
            ("data:image/png,abcd", "must be base64-encoded"),
            ("data:image/png;base64", "needs a `,`"),
            ("data:;base64,aGk=", "name its media type"),
            ("data:image/bmp;base64,aGk=", "image/bmp"),
            ("ftp://example.com/a.png", "neither an http(s) URL"),
            ("data:image/png;base64,", "empty"),
        ] {
            let error = check_image_url(url).unwrap_err();
            assert!(error.contains(needle), "{url}: {error}");
        }
    }

    #[test]
    fn images_and_pdfs_translate_both_ways() {
        let part = json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"), "detail": "low"}});
        let block = openai_part_to_anthropic("messages[0].content[1]", &part).unwrap();
        assert_eq!(
            block,
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})
        );
        let back = anthropic_media_to_openai("m", "image", &block["source"], &Map::new()).unwrap();
        assert_eq!(back["image_url"]["url"], part["image_url"]["url"]);

        let url_part =
            json!({"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}});
        let block = openai_part_to_anthropic("p", &url_part).unwrap();
        assert_eq!(
            block["source"],
            json!({"type": "url", "url": "https://example.com/a.jpg"})
        );

        let pdf = json!({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}});
        let block = openai_part_to_anthropic("p", &pdf).unwrap();
        assert_eq!(block["type"], "document");
        assert_eq!(block["title"], "a.pdf");
        let extra: Map<String, Value> = [("title".to_owned(), Value::from("a.pdf"))]
            .into_iter()
            .collect();
        let back = anthropic_media_to_openai("p", "document", &block["source"], &extra).unwrap();
        assert_eq!(back, pdf);
    }

    #[test]
    fn one_sided_forms_are_refused_by_name() {
        for (part, needle) in [
            (
                json!({"type": "file", "file": {"file_id": "file-1"}}),
                "file_id",
            ),
            (
                json!({"type": "input_audio", "input_audio": {}}),
                "`input_audio` parts",
            ),
            (
                json!({"type": "file", "file": {"file_data": "data:text/csv;base64,YQ=="}}),
                "text/csv",
            ),
        ] {
            let error = openai_part_to_anthropic("messages[2].content[0]", &part).unwrap_err();
            assert!(error.what.contains(needle), "{}", error.what);
            assert!(
                error.what.contains("messages[2].content[0]"),
                "{}",
                error.what
            );
        }
        let error = anthropic_media_to_openai(
            "messages.0.content.1",
            "document",
            &json!({"type": "url", "url": "https://example.com/a.pdf"}),
            &Map::new(),
        )
        .unwrap_err();
        assert!(
            error.what.contains("messages.0.content.1"),
            "{}",
            error.what
        );
    }

    #[test]
    fn anthropic_sources_are_checked() {
        assert!(check_anthropic_source(
            "image",
            &json!({"type": "base64", "media_type": "image/png", "data": PNG})
        )
        .is_ok());
        for (source, needle) in [
            (
                json!({"type": "base64", "media_type": "image/png", "data": "%%"}),
                "source.data",
            ),
            (
                json!({"type": "base64", "media_type": "image/tiff", "data": PNG}),
                "image/tiff",
            ),
            (json!({"type": "base64", "data": PNG}), "source.media_type"),
            (
                json!({"type": "url", "url": "file:///etc/passwd"}),
                "source.url",
            ),
            (json!({"type": "blob"}), "source.type"),
        ] {
            let error = check_anthropic_source("image", &source).unwrap_err();
            assert!(error.contains(needle), "{source}: {error}");
        }
    }
}
