//! Tool use in both formats: the tools a request offers, the checks the real APIs
//! make on them, the simulator's deterministic calls and their arguments, and the
//! tokens images and documents count for.
//!
//! The rule the simulator follows, so that tests know the answer in advance:
//! - with no tools, or `tool_choice` none, it answers in text as usual;
//! - when the conversation ends with tool results and the choice is `auto`, it
//!   answers in text: `Tool results: <the results' text>`;
//! - otherwise it calls the named tool (`tool_choice` names one), or every offered
//!   tool whose name appears in the last user message, or else the first tool; with
//!   parallel calls disabled, only the first of these;
//! - each call's arguments fill the schema's properties: the `enum`'s first value,
//!   `"sim"` for strings, `1` for integers, `1.5` for numbers, `true` for booleans,
//!   `[]` and `{}` for arrays and objects.
//!
//! The output tokens of a call are [`words`] of its arguments plus one for the name.
//! An image or document costs [`MEDIA_TOKENS`] input tokens.

use serde_json::{json, Map, Value};

use crate::api::ApiError;
use crate::text::{content_text, words};

/// Input tokens the simulator counts for each image or document (OpenAI's documented
/// cost of one low-detail image).
pub const MEDIA_TOKENS: u64 = 85;

/// A tool a request offers.
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    pub name: String,
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

/// The tools a request offers and how it lets the model use them.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub tools: Vec<Tool>,
    pub choice: Choice,
    pub parallel: bool,
}

/// One tool call the simulator makes.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// What the simulator does with a request that offers tools.
#[derive(Debug, Clone)]
pub(crate) enum Turn {
    /// Call these tools.
    Calls(Vec<Call>),
    /// Answer in text with the results the conversation ends with.
    Results(String),
    /// Answer as usual.
    Text,
}

/// Parses and checks OpenAI `tools`, `tool_choice` and `parallel_tool_calls`.
pub(crate) fn parse_openai(map: &Map<String, Value>) -> Result<Option<Offer>, ApiError> {
    let tools = match map.get("tools") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid type for 'tools': expected an array of objects.",
            )
            .param("tools")
            .code("invalid_type"))
        }
    };
    let mut offered = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let name = tool.pointer("/function/name").and_then(Value::as_str);
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(ApiError::invalid(format!(
                "Missing required parameter: 'tools[{i}].function.name'."
            ))
            .param(&format!("tools[{i}].function.name"))
            .code("missing_required_parameter"));
        };
        let schema = tool
            .pointer("/function/parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        if !schema.is_object() || schema.get("type").is_some_and(|t| t != "object") {
            return Err(ApiError::invalid(format!(
                "Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'."
            ))
            .param(&format!("tools[{i}].function.parameters"))
            .code("invalid_function_parameters"));
        }
        offered.push(Tool {
            name: name.to_owned(),
            schema,
        });
    }
    let choice = match map.get("tool_choice") {
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            other => {
                return Err(ApiError::invalid(format!(
                "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
            ))
                .param("tool_choice")
                .code("invalid_value"))
            }
        },
        Some(named) => match named.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Choice::Named(name.to_owned()),
            None => {
                return Err(ApiError::invalid(
                    "Missing required parameter: 'tool_choice.function'.",
                )
                .param("tool_choice.function")
                .code("missing_required_parameter"))
            }
        },
    };
    let parallel = map
        .get("parallel_tool_calls")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(Some(Offer {
        tools: offered,
        choice,
        parallel,
    }))
}

/// Parses and checks Anthropic `tools` and `tool_choice`.
pub(crate) fn parse_anthropic(map: &Map<String, Value>) -> Result<Option<Offer>, ApiError> {
    let tools = match map.get("tools") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(ApiError::invalid("tools: Input should be a valid list")),
    };
    let mut offered = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return Err(ApiError::invalid(format!("tools.{i}.name: Field required")));
        };
        let Some(schema) = tool.get("input_schema") else {
            return Err(ApiError::invalid(format!(
                "tools.{i}.custom.input_schema: Field required"
            )));
        };
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ApiError::invalid(format!(
                "tools.{i}.custom.input_schema.type: Input should be 'object'"
            )));
        }
        offered.push(Tool {
            name: name.to_owned(),
            schema: schema.clone(),
        });
    }
    let (choice, parallel) = match map.get("tool_choice") {
        None | Some(Value::Null) => (Choice::Auto, true),
        Some(choice) => {
            let parallel = choice.get("disable_parallel_tool_use") != Some(&Value::Bool(true));
            let choice = match choice.get("type").and_then(Value::as_str) {
                Some("auto") => Choice::Auto,
                Some("none") => Choice::None,
                Some("any") => Choice::Required,
                Some("tool") => match choice.get("name").and_then(Value::as_str) {
                    Some(name) => Choice::Named(name.to_owned()),
                    None => return Err(ApiError::invalid("tool_choice.tool.name: Field required")),
                },
                _ => {
                    return Err(ApiError::invalid(
                        "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
                    ))
                }
            };
            (choice, parallel)
        }
    };
    Ok(Some(Offer {
        tools: offered,
        choice,
        parallel,
    }))
}

/// Checks that every OpenAI `tool` message answers a call of the assistant message
/// before it, as the API does.
pub(crate) fn check_openai_results(messages: &[Value]) -> Result<(), ApiError> {
    let mut pending: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("assistant") => {
                pending = message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .filter_map(|c| c.get("id").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            Some("tool") => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !pending.contains(&id) {
                    return Err(ApiError::invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    )
                    .param(&format!("messages.[{i}].role")));
                }
            }
            _ => pending.clear(),
        }
    }
    Ok(())
}

/// Checks that every Anthropic `tool_result` answers a `tool_use` of the message
/// before it, as the API does.
pub(crate) fn check_anthropic_results(messages: &[Value]) -> Result<(), ApiError> {
    let mut pending: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let stray: Vec<&str> = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .filter_map(|b| b.get("tool_use_id").and_then(Value::as_str))
            .filter(|id| !pending.contains(id))
            .collect();
        if !stray.is_empty() {
            return Err(ApiError::invalid(format!(
                "messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                stray.join(", ")
            )));
        }
        pending = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
            .filter_map(|b| b.get("id").and_then(Value::as_str))
            .collect();
    }
    Ok(())
}

/// The text of the tool results the conversation ends with, if it ends with any:
/// OpenAI's trailing `tool` messages, or the `tool_result` blocks of Anthropic's last
/// user message.
pub(crate) fn trailing_results(messages: &[Value]) -> Option<String> {
    let mut texts = Vec::new();
    for message in messages.iter().rev() {
        match message.get("role").and_then(Value::as_str) {
            Some("tool") => {
                let mut text = String::new();
                content_text(message.get("content").unwrap_or(&Value::Null), &mut text);
                texts.push(text);
            }
            Some("user") if texts.is_empty() => {
                let blocks = message.get("content").and_then(Value::as_array)?;
                for block in blocks.iter().rev() {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                        let mut text = String::new();
                        content_text(block.get("content").unwrap_or(&Value::Null), &mut text);
                        texts.push(text);
                    }
                }
                break;
            }
            _ => break,
        }
    }
    if texts.is_empty() {
        return None;
    }
    texts.reverse();
    Some(texts.join(" "))
}

/// The calls to make for a request, by the rule; none when it answers in text, with
/// `output` replaced by the results' answer when the conversation ends in them.
pub(crate) fn calls_or_answer(
    offer: Option<&Offer>,
    messages: &[Value],
    segments: &[crate::text::Segment],
    output: &mut crate::text::Output,
    new_id: impl FnMut() -> String,
) -> Vec<Call> {
    let last_user = crate::quality::last_user_text(segments).unwrap_or_default();
    match decide(offer, messages, last_user, new_id) {
        Turn::Calls(calls) => calls,
        Turn::Results(text) => {
            *output = crate::text::Output::answer(&text);
            Vec::new()
        }
        Turn::Text => Vec::new(),
    }
}

/// What the simulator does: see the module documentation for the rule.
pub(crate) fn decide(
    offer: Option<&Offer>,
    messages: &[Value],
    last_user_text: &str,
    mut new_id: impl FnMut() -> String,
) -> Turn {
    let Some(offer) = offer.filter(|o| !o.tools.is_empty() && o.choice != Choice::None) else {
        return Turn::Text;
    };
    if offer.choice == Choice::Auto {
        if let Some(results) = trailing_results(messages) {
            return Turn::Results(format!("Tool results: {results}"));
        }
    }
    let mut chosen: Vec<&Tool> = match &offer.choice {
        Choice::Named(name) => offer
            .tools
            .iter()
            .filter(|t| &t.name == name)
            .take(1)
            .collect(),
        _ => offer
            .tools
            .iter()
            .filter(|t| last_user_text.contains(t.name.as_str()))
            .collect(),
    };
    if chosen.is_empty() {
        chosen.push(&offer.tools[0]);
    }
    if !offer.parallel {
        chosen.truncate(1);
    }
    Turn::Calls(
        chosen
            .into_iter()
            .map(|tool| Call {
                id: new_id(),
                name: tool.name.clone(),
                arguments: arguments_for(&tool.schema).to_string(),
            })
            .collect(),
    )
}

/// Arguments that fill a schema's properties (see the module documentation).
pub(crate) fn arguments_for(schema: &Value) -> Value {
    let mut arguments = Map::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            arguments.insert(name.clone(), value_for(property));
        }
    }
    Value::Object(arguments)
}

fn value_for(property: &Value) -> Value {
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match property.get("type").and_then(Value::as_str) {
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => arguments_for(property),
        _ => json!("sim"),
    }
}

/// Output tokens of the calls: the words of each call's arguments plus one for its name.
pub(crate) fn call_tokens(calls: &[Call]) -> u64 {
    calls.iter().map(|c| words(&c.arguments).max(1) + 1).sum()
}

/// The arguments split into the pieces a stream sends: 8 characters each.
pub(crate) fn pieces(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    chars.chunks(8).map(|c| c.iter().collect()).collect()
}

/// The images and documents in a content value (parts, blocks, tool results).
pub(crate) fn media_count(content: &Value) -> u64 {
    match content {
        Value::Array(items) => items.iter().map(media_count).sum(),
        Value::Object(map) => {
            let own = match map.get("type").and_then(Value::as_str) {
                Some(
                    "image_url" | "image" | "document" | "file" | "input_image" | "input_file",
                ) => 1,
                _ => 0,
            };
            own + map.get("content").map_or(0, media_count)
        }
        _ => 0,
    }
}

/// Checks the images of a content value as the APIs do: a data URL or base64 source
/// must hold valid base64.
pub(crate) fn check_media(content: &Value, path: &str) -> Result<(), ApiError> {
    let Value::Array(items) = content else {
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        let data = match item.get("type").and_then(Value::as_str) {
            Some("image_url") => item
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .and_then(|u| u.strip_prefix("data:"))
                .map(|rest| rest.split_once(";base64,").map_or("", |(_, d)| d)),
            Some("image") => item
                .get("source")
                .filter(|s| s.get("type").and_then(Value::as_str) == Some("base64"))
                .map(|s| s.get("data").and_then(Value::as_str).unwrap_or("")),
            _ => None,
        };
        if let Some(data) = data {
            if !is_base64(data) {
                return Err(ApiError::invalid(format!(
                    "{path}.{i}: the image data is not valid base64"
                )));
            }
        }
    }
    Ok(())
}

fn is_base64(data: &str) -> bool {
    let body = data.trim_end_matches('=');
    !data.is_empty()
        && data.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && body.len() % 4 != 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(choice: Choice, parallel: bool) -> Offer {
        Offer {
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    schema: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}}}),
                },
                Tool {
                    name: "get_time".into(),
                    schema: json!({"type": "object"}),
                },
            ],
            choice,
            parallel,
        }
    }

    fn calls(turn: Turn) -> Vec<(String, String)> {
        match turn {
            Turn::Calls(calls) => calls.into_iter().map(|c| (c.name, c.arguments)).collect(),
            other => panic!("expected calls, got {other:?}"),
        }
    }

    #[test]
    fn the_rule_is_deterministic() {
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("call_{n}")
        };
        let user = [json!({"role": "user", "content": "get_time and get_weather please"})];
        assert_eq!(
            calls(decide(
                Some(&offer(Choice::Auto, true)),
                &user,
                "get_time and get_weather please",
                &mut id
            )),
            vec![
                (
                    "get_weather".to_owned(),
                    r#"{"city":"sim","days":1,"unit":"c"}"#.to_owned()
                ),
                ("get_time".to_owned(), "{}".to_owned()),
            ]
        );
        assert_eq!(
            calls(decide(
                Some(&offer(Choice::Auto, false)),
                &user,
                "get_time and get_weather",
                &mut id
            ))
            .len(),
            1
        );
        assert_eq!(
            calls(decide(
                Some(&offer(Choice::Named("get_time".into()), true)),
                &user,
                "",
                &mut id
            ))[0]
                .0,
            "get_time"
        );
        assert_eq!(
            calls(decide(
                Some(&offer(Choice::Required, true)),
                &user,
                "nothing named",
                &mut id
            ))[0]
                .0,
            "get_weather"
        );
        assert!(matches!(
            decide(Some(&offer(Choice::None, true)), &user, "", &mut id),
            Turn::Text
        ));
        let answered = [
            json!({"role": "user", "content": "get_time"}),
            json!({"role": "assistant", "tool_calls": [{"id": "c1"}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "12:00"}),
        ];
        match decide(
            Some(&offer(Choice::Auto, true)),
            &answered,
            "get_time",
            &mut id,
        ) {
            Turn::Results(text) => assert_eq!(text, "Tool results: 12:00"),
            other => panic!("{other:?}"),
        }
        let anthropic = [
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "18C"}]}]}),
        ];
        assert_eq!(trailing_results(&anthropic).as_deref(), Some("18C"));
    }

    #[test]
    fn results_must_answer_the_previous_calls() {
        let bad = [
            json!({"role": "user", "content": "x"}),
            json!({"role": "tool", "tool_call_id": "c9", "content": "1"}),
        ];
        assert!(check_openai_results(&bad).is_err());
        let bad = [
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}),
        ];
        let error = check_anthropic_results(&bad).unwrap_err();
        assert!(error.message.contains("toolu_9"), "{}", error.message);
    }

    #[test]
    fn media_is_counted_and_checked() {
        let content = json!([{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
            {"type": "tool_result", "content": [{"type": "image", "source": {"type": "base64", "data": "aGk="}}]}]);
        assert_eq!(media_count(&content), 2);
        assert!(check_media(&content, "messages.0.content").is_ok());
        let bad = json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]);
        assert!(check_media(&bad, "messages.0.content").is_err());
        assert_eq!(pieces("abcdefghij"), vec!["abcdefgh", "ij"]);
    }
}
