//! Tool use between the formats: definitions, `tool_choice`, assistant tool calls ⇄
//! `tool_use` blocks, tool results, and the checks both APIs make on them.
//!
//! | OpenAI Chat Completions | Anthropic Messages |
//! |---|---|
//! | `tools[].function.{name, description, parameters}` | `tools[].{name, description, input_schema}` |
//! | `tool_choice`: `auto` / `none` / `required` / `{function: {name}}` | `{type: auto}` / `{type: none}` / `{type: any}` / `{type: tool, name}` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | assistant `tool_calls[].function.arguments` (a JSON string) | `tool_use.input` (an object) |
//! | a `tool` message with `tool_call_id` | a `tool_result` block in the next user message |
//! | `finish_reason: tool_calls` | `stop_reason: tool_use` |
//!
//! OpenAI tool messages have no error flag: an Anthropic `tool_result` with
//! `is_error: true` reaches an OpenAI backend as a tool message whose text starts
//! with [`TOOL_ERROR_PREFIX`], and comes back from it as a plain result.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::Unsupported;
use crate::anthropic::ContentBlock;

/// The start of a tool message's text that carries an Anthropic error result.
pub const TOOL_ERROR_PREFIX: &str = "Error: ";

/// The schema of a tool that takes no parameters.
fn empty_schema() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// Checks a JSON Schema given as tool parameters: an object whose `type`, when
/// present, is `"object"`. The error says what is wrong.
fn check_schema(schema: &Value) -> Result<(), String> {
    let Some(object) = schema.as_object() else {
        return Err(format!(
            "must be a JSON Schema object, got {}",
            json_kind(schema)
        ));
    };
    match object.get("type") {
        None => Ok(()),
        Some(Value::String(kind)) if kind == "object" => Ok(()),
        Some(other) => Err(format!(
            "the schema's `type` must be \"object\", got {other}"
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn non_empty_name(tool: &Value, pointer: &str) -> Option<String> {
    tool.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// The checks OpenAI makes on `tools`: an array of objects; a `function` tool has
/// a non-empty `function.name` and, when given, `parameters` that is an object schema.
pub fn check_openai_tools(tools: &Value) -> Result<(), String> {
    let Some(tools) = tools.as_array() else {
        return Err(format!("tools: must be an array, got {}", json_kind(tools)));
    };
    for (index, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            continue;
        }
        if non_empty_name(tool, "/function/name").is_none() {
            return Err(format!(
                "tools[{index}].function.name: must be a non-empty string"
            ));
        }
        if let Some(parameters) = tool.pointer("/function/parameters") {
            check_schema(parameters)
                .map_err(|e| format!("tools[{index}].function.parameters: {e}"))?;
        }
    }
    Ok(())
}

/// The checks Anthropic makes on `tools`: a custom tool (no `type`, or
/// `"custom"`) has a non-empty `name` and an `input_schema` that is an object schema.
pub fn check_anthropic_tools(tools: &Value) -> Result<(), String> {
    let Some(tools) = tools.as_array() else {
        return Err(format!(
            "tools: Input should be a valid list, got {}",
            json_kind(tools)
        ));
    };
    for (index, tool) in tools.iter().enumerate() {
        if !is_anthropic_custom_tool(tool) {
            continue;
        }
        if non_empty_name(tool, "/name").is_none() {
            return Err(format!("tools.{index}.name: must be a non-empty string"));
        }
        match tool.get("input_schema") {
            None => return Err(format!("tools.{index}.input_schema: Field required")),
            Some(schema) => {
                check_schema(schema).map_err(|e| format!("tools.{index}.input_schema: {e}"))?;
            }
        }
    }
    Ok(())
}

fn is_anthropic_custom_tool(tool: &Value) -> bool {
    matches!(
        tool.get("type").and_then(Value::as_str),
        None | Some("custom")
    )
}

/// OpenAI `tools` as Anthropic tools. Only `function` tools have an Anthropic form.
pub(super) fn openai_tools_to_anthropic(tools: &[Value]) -> Result<Vec<Value>, Unsupported> {
    let mut translated = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            return Err(Unsupported::new(format!(
                "tools[{index}].type = {kind:?}: only `function` tools have an Anthropic equivalent"
            )));
        }
        let name = non_empty_name(tool, "/function/name")
            .ok_or_else(|| Unsupported::new(format!("tools[{index}].function.name is missing")))?;
        let schema = tool
            .pointer("/function/parameters")
            .cloned()
            .unwrap_or_else(empty_schema);
        check_schema(&schema)
            .map_err(|e| Unsupported::new(format!("tools[{index}].function.parameters: {e}")))?;
        let mut out = Map::new();
        out.insert("name".to_owned(), Value::from(name));
        if let Some(description) = tool
            .pointer("/function/description")
            .filter(|d| !d.is_null())
        {
            out.insert("description".to_owned(), description.clone());
        }
        out.insert("input_schema".to_owned(), schema);
        translated.push(Value::Object(out));
    }
    Ok(translated)
}

/// OpenAI `tool_choice` and `parallel_tool_calls` as Anthropic's `tool_choice`.
/// `None` when neither says anything beyond the default (`auto`, parallel allowed).
pub(super) fn openai_tool_choice_to_anthropic(
    choice: Option<&Value>,
    parallel_tool_calls: Option<bool>,
) -> Result<Option<Value>, Unsupported> {
    let mut translated = match choice.filter(|choice| !choice.is_null()) {
        None => None,
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Some(json!({ "type": "auto" })),
            "none" => Some(json!({ "type": "none" })),
            "required" => Some(json!({ "type": "any" })),
            other => {
                return Err(Unsupported::new(format!(
                    "`tool_choice` = {other:?}: expected auto, none, required or a named function"
                )))
            }
        },
        Some(named) => {
            let name = non_empty_name(named, "/function/name").ok_or_else(|| {
                Unsupported::new(format!(
                    "`tool_choice` = {named}: only a named function (`{{\"type\": \"function\", \"function\": {{\"name\": …}}}}`) has an Anthropic equivalent"
                ))
            })?;
            Some(json!({ "type": "tool", "name": name }))
        }
    };
    if parallel_tool_calls == Some(false) {
        let choice = translated.get_or_insert_with(|| json!({ "type": "auto" }));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    Ok(translated)
}

/// An assistant's OpenAI tool call as a `tool_use` block. The arguments must be a
/// JSON object, as Anthropic's `input` is.
pub(super) fn openai_tool_call_to_tool_use(
    path: &str,
    call: &Value,
) -> Result<ContentBlock, Unsupported> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(Unsupported::new(format!(
            "{path}.type = {kind:?}: only function calls have an Anthropic equivalent"
        )));
    }
    let id = non_empty_name(call, "/id")
        .ok_or_else(|| Unsupported::new(format!("{path}.id is missing")))?;
    let name = non_empty_name(call, "/function/name")
        .ok_or_else(|| Unsupported::new(format!("{path}.function.name is missing")))?;
    let input = match call.pointer("/function/arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(object @ Value::Object(_)) => object,
            _ => {
                return Err(Unsupported::new(format!(
                    "{path}.function.arguments: must be a JSON object for an Anthropic `tool_use` input"
                )))
            }
        },
        Some(object @ Value::Object(_)) => object.clone(),
        Some(other) => {
            return Err(Unsupported::new(format!(
                "{path}.function.arguments: must be a JSON string, got {}",
                json_kind(other)
            )))
        }
    };
    Ok(ContentBlock::ToolUse {
        id,
        name,
        input,
        extra: Map::new(),
    })
}

/// The text of an OpenAI tool message (a string, or text parts joined).
pub(super) fn openai_tool_message_text(
    path: &str,
    content: Option<&crate::openai::MessageContent>,
) -> Result<String, Unsupported> {
    use crate::openai::{ContentPart, MessageContent};
    match content {
        None => Ok(String::new()),
        Some(MessageContent::Text(text)) => Ok(text.clone()),
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for (index, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text { text: part, .. } => text.push_str(part),
                    other => {
                        return Err(Unsupported::new(format!(
                            "{path}.content[{index}]: `{}` parts in tool messages have no Anthropic equivalent",
                            other.kind()
                        )))
                    }
                }
            }
            Ok(text)
        }
    }
}

/// Anthropic custom tools as OpenAI `function` tools; server and Anthropic-defined
/// tools (web search, bash, the text editor, …) have no OpenAI form.
pub(super) fn anthropic_tools_to_openai(tools: &[Value]) -> Result<Vec<Value>, Unsupported> {
    let mut translated = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        if !is_anthropic_custom_tool(tool) {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
            return Err(Unsupported::new(format!(
                "tools.{index}.type = {kind:?}: Anthropic-defined and server tools have no OpenAI equivalent; only custom tools are translated"
            )));
        }
        let name = non_empty_name(tool, "/name")
            .ok_or_else(|| Unsupported::new(format!("tools.{index}.name is missing")))?;
        let schema = tool
            .get("input_schema")
            .cloned()
            .unwrap_or_else(empty_schema);
        check_schema(&schema)
            .map_err(|e| Unsupported::new(format!("tools.{index}.input_schema: {e}")))?;
        let mut function = Map::new();
        function.insert("name".to_owned(), Value::from(name));
        if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
            function.insert("description".to_owned(), description.clone());
        }
        function.insert("parameters".to_owned(), schema);
        translated.push(json!({ "type": "function", "function": function }));
    }
    Ok(translated)
}

/// Anthropic `tool_choice` as OpenAI's `tool_choice` and `parallel_tool_calls`.
pub(super) fn anthropic_tool_choice_to_openai(
    choice: &Value,
) -> Result<(Option<Value>, Option<bool>), Unsupported> {
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    let translated = match kind {
        "auto" => Value::from("auto"),
        "none" => Value::from("none"),
        "any" => Value::from("required"),
        "tool" => {
            let name = non_empty_name(choice, "/name")
                .ok_or_else(|| Unsupported::new("`tool_choice.name` is missing"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        other => {
            return Err(Unsupported::new(format!(
                "`tool_choice.type` = {other:?}: expected auto, any, tool or none"
            )))
        }
    };
    let parallel =
        (choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true))).then_some(false);
    Ok((Some(translated), parallel))
}

/// A `tool_use` block as an OpenAI tool call.
pub(super) fn tool_use_to_openai_call(id: &str, name: &str, input: &Value) -> Value {
    json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": input.to_string() },
    })
}

/// The text of a `tool_result`'s content for an OpenAI tool message: a string, or
/// text blocks joined; an error result starts with [`TOOL_ERROR_PREFIX`].
pub(super) fn tool_result_text(
    path: &str,
    content: Option<&Value>,
    is_error: bool,
) -> Result<String, Unsupported> {
    let mut text = String::new();
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(body)) => text.push_str(body),
        Some(Value::Array(blocks)) => {
            for (index, block) in blocks.iter().enumerate() {
                match (block.get("type").and_then(Value::as_str), block.get("text")) {
                    (Some("text"), Some(Value::String(body))) => {
                        if !text.is_empty() {
                            text.push_str("\n\n");
                        }
                        text.push_str(body);
                    }
                    (kind, _) => {
                        return Err(Unsupported::new(format!(
                            "{path}.content.{index}: `{}` blocks in tool results have no OpenAI equivalent; only text is translated",
                            kind.unwrap_or("unknown")
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(Unsupported::new(format!(
                "{path}.content: must be a string or a list of blocks, got {}",
                json_kind(other)
            )))
        }
    }
    if is_error && !text.starts_with(TOOL_ERROR_PREFIX) {
        text.insert_str(0, TOOL_ERROR_PREFIX);
    }
    Ok(text)
}

/// True when a tool call's streamed arguments, all of them, are not a JSON value (no
/// arguments at all count as `{}`).
pub(crate) fn arguments_are_invalid(arguments: &str) -> bool {
    let text = arguments.trim();
    !text.is_empty() && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
}

/// The tool calls an assistant turn made and which have been answered, to check
/// that every result answers a call of the turn before it.
#[derive(Debug, Default)]
pub(crate) struct PendingCalls {
    ids: HashSet<String>,
}

impl PendingCalls {
    /// A new assistant turn: its calls replace the previous turn's.
    pub(crate) fn assistant_turn<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        self.ids = ids.into_iter().map(str::to_owned).collect();
    }

    /// A result for `id`: true when it answers a call of the preceding turn.
    pub(crate) fn answers(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// The ids of an OpenAI assistant message's tool calls.
pub(crate) fn openai_call_ids(calls: &[Value]) -> impl Iterator<Item = &str> {
    calls
        .iter()
        .filter_map(|call| call.get("id").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather_openai() -> Value {
        json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }})
    }

    #[test]
    fn tool_definitions_translate_both_ways() {
        let anthropic = openai_tools_to_anthropic(&[weather_openai()]).unwrap();
        assert_eq!(
            anthropic,
            vec![json!({
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            })]
        );
        assert_eq!(
            anthropic_tools_to_openai(&anthropic).unwrap(),
            vec![weather_openai()]
        );
        // A function without parameters takes none.
        let bare =
            openai_tools_to_anthropic(&[json!({"type": "function", "function": {"name": "now"}})])
                .unwrap();
        assert_eq!(bare[0]["input_schema"], empty_schema());
    }

    #[test]
    fn tool_choice_table() {
        for (choice, parallel, expected) in [
            (json!("auto"), None, Some(json!({"type": "auto"}))),
            (json!("none"), None, Some(json!({"type": "none"}))),
            (json!("required"), None, Some(json!({"type": "any"}))),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                Some(false),
                Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})),
            ),
            (
                Value::Null,
                Some(false),
                Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
            ),
            (Value::Null, Some(true), None),
        ] {
            let translated = openai_tool_choice_to_anthropic(Some(&choice), parallel).unwrap();
            assert_eq!(translated, expected, "{choice} {parallel:?}");
        }
        for (choice, expected, parallel) in [
            (json!({"type": "auto"}), json!("auto"), None),
            (
                json!({"type": "any", "disable_parallel_tool_use": true}),
                json!("required"),
                Some(false),
            ),
            (json!({"type": "none"}), json!("none"), None),
            (
                json!({"type": "tool", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
                None,
            ),
        ] {
            assert_eq!(
                anthropic_tool_choice_to_openai(&choice).unwrap(),
                (Some(expected), parallel),
                "{choice}"
            );
        }
    }

    #[test]
    fn tool_calls_become_tool_use_with_object_input() {
        let call = json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"city\":\"Paris\"}"}});
        let block = openai_tool_call_to_tool_use("messages[1].tool_calls[0]", &call).unwrap();
        assert_eq!(
            block,
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "f".into(),
                input: json!({"city": "Paris"}),
                extra: Map::new()
            }
        );
        let back = tool_use_to_openai_call("call_1", "f", &json!({"city": "Paris"}));
        assert_eq!(back, call);
        for (arguments, needle) in [
            (json!("[1]"), "JSON object"),
            (json!("{oops"), "JSON object"),
            (json!(3), "a number"),
        ] {
            let call = json!({"id": "c", "function": {"name": "f", "arguments": arguments}});
            let error =
                openai_tool_call_to_tool_use("messages[1].tool_calls[0]", &call).unwrap_err();
            assert!(
                error.what.contains(needle) && error.what.contains("messages[1].tool_calls[0]"),
                "{}",
                error.what
            );
        }
    }

    #[test]
    fn schemas_that_are_not_objects_are_named() {
        let error = check_openai_tools(
            &json!([{"type": "function", "function": {"name": "f", "parameters": "string"}}]),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "tools[0].function.parameters: must be a JSON Schema object, got a string"
        );
        let error =
            check_anthropic_tools(&json!([{"name": "f", "input_schema": {"type": "array"}}]))
                .unwrap_err();
        assert_eq!(
            error,
            "tools.0.input_schema: the schema's `type` must be \"object\", got \"array\""
        );
        let error = check_anthropic_tools(&json!([{"name": "f"}])).unwrap_err();
        assert_eq!(error, "tools.0.input_schema: Field required");
        // Server tools are the API's own business.
        assert!(check_anthropic_tools(
            &json!([{"type": "web_search_20250305", "name": "web_search"}])
        )
        .is_ok());
    }

    #[test]
    fn error_results_keep_their_flag_as_a_prefix() {
        assert_eq!(
            tool_result_text("m", Some(&json!("42")), false).unwrap(),
            "42"
        );
        assert_eq!(
            tool_result_text(
                "m",
                Some(&json!([{"type": "text", "text": "no such city"}])),
                true
            )
            .unwrap(),
            "Error: no such city"
        );
        let error = tool_result_text(
            "messages.2.content.0",
            Some(&json!([{"type": "image", "source": {}}])),
            false,
        )
        .unwrap_err();
        assert!(
            error.what.contains("messages.2.content.0.content.0"),
            "{}",
            error.what
        );
    }
}
