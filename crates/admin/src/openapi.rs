//! Completes the generated OpenAPI document so that clients can be generated from it and
//! Swagger UI can fetch its own token: every operation lists every answer it can give (with
//! the error schema and a description, which OpenAPI 3.1 requires), and declares the OAuth 2.0
//! client-credentials scheme with the scope it needs. One pass over the whole document, so
//! no handler can forget an answer.

use serde_json::{Value, json};

/// The answers every admin operation can give besides its own, with why.
fn common_errors(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        (
            "401",
            "No, or an invalid, bearer token (RFC 6750 challenge)",
        ),
        (
            "403",
            "The token lacks the scope, or the admin is limited to projects",
        ),
        ("503", "The database is unavailable; retry shortly"),
    ];
    let writes = matches!(method, "post" | "patch" | "put");
    if writes {
        out.push(("400", "The body is not JSON, or not of the expected type"));
        out.push(("422", "Validation failed; `fields` names each bad field"));
    }
    if path.contains('{') {
        out.push(("404", "No such resource (or one the admin may not see)"));
    }
    if writes && !path.contains('{') || method == "patch" {
        out.push(("409", "A unique value is taken"));
    }
    out
}

/// Reason phrases for answers a handler listed without a description.
fn reason(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "204" => "Done; no body",
        "400" => "Malformed request",
        "401" => "Authentication required",
        "403" => "Forbidden",
        "404" => "Not found",
        "409" => "Conflict",
        "422" => "Validation failed",
        "503" => "Temporarily unavailable",
        _ => "Answer",
    }
}

/// Complete `doc` (the serialized document) in place. `token_url` is this server's token
/// endpoint, for the client-credentials flow.
pub fn complete(doc: &mut Value, token_url: &str) {
    let error_ref = json!({"$ref": "#/components/schemas/ErrorBody"});
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    continue;
                }
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                if let Some(responses) = responses {
                    for (code, why) in common_errors(method, path) {
                        responses.entry(code).or_insert_with(|| {
                            json!({"description": why,
                                   "content": {"application/json": {"schema": error_ref.clone()}}})
                        });
                    }
                    for (code, answer) in responses.iter_mut() {
                        if let Some(answer) = answer.as_object_mut()
                            && answer
                                .get("description")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                        {
                            answer.insert("description".to_owned(), json!(reason(code)));
                        }
                    }
                }
                let scope = if method == "get" {
                    "gatehouse:admin:read"
                } else {
                    "gatehouse:admin"
                };
                op.insert(
                    "security".to_owned(),
                    json!([{"bearer": []}, {"oauth2": [scope]}]),
                );
            }
        }
    }
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(schemes) = components
        .and_then(Value::as_object_mut)
        .map(|c| c.entry("securitySchemes").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        schemes.insert(
            "oauth2".to_owned(),
            json!({
                "type": "oauth2",
                "description": "Client credentials of an admin access profile (one granting the built-in admin collection).",
                "flows": {"clientCredentials": {
                    "tokenUrl": token_url,
                    "scopes": {
                        "gatehouse:admin": "Read and change the registry",
                        "gatehouse:admin:read": "Read the registry"
                    }
                }}
            }),
        );
    }
}
