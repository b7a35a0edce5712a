//! The `gatehouse` command line over a running server: `token`, `introspect`, `revoke`, and
//! `collections|projects|clients|profiles|api-keys|policies <list|get|create|update|delete|
//! refresh-secret>`, `signing-keys`, `usage`, `audit` — what Hydra users do with `hydra
//! create client` / `hydra perform client-credentials` / `hydra introspect token`.
//!
//! Requests are typed by the admin API's own wire types (a body is parsed into the same
//! `*Input` / `*PatchInput` the server parses, so a typo is a usage error before anything is
//! sent) and answers are decoded into the registry's read models, the types the OpenAPI
//! document is generated from: a server that drifted from the document fails here loudly.
//!
//! Exit codes a script can rely on: 0 done, 1 refused by the server (its error and field
//! messages on standard error), 2 usage (bad flags, body, credentials file), 3 unreachable.

mod output;

use clap::{Args, Subcommand, ValueEnum};
use gatehouse_registry::api::{
    ApiKey, ApiKeyIssued, AuditEvent, Client, Collection, CollectionCreated,
    CollectionSecretIssued, Page, Policy, Profile, ProfileCreated, ProfileSecretIssued, Project,
    UsageReport,
};
use output::{Row, print_items, print_object};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns (the default on a terminal).
    Table,
    /// The answer as JSON (the default otherwise).
    Json,
}

/// Who the command acts as, and how it prints.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The client id to authenticate with (an admin profile's `oauth_client_id` for admin
    /// commands).
    #[arg(long, env = "GATEHOUSE_CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    /// Its secret.
    #[arg(
        long,
        env = "GATEHOUSE_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// A JSON file `{client_id, client_secret, issuer?, admin_url?}` of mode 0600 (the
    /// server's `gatehouse.bootstrap.json` is one); flags and environment win over it.
    #[arg(long, env = "GATEHOUSE_CREDENTIALS_FILE", global = true)]
    pub credentials_file: Option<PathBuf>,
    /// `table` or `json` (default: table on a terminal, JSON otherwise).
    #[arg(long, short = 'o', value_enum, global = true)]
    pub output: Option<OutputFormat>,
}

/// A JSON body: inline or from a file (`-` for standard input).
#[derive(Debug, Clone, Args)]
pub struct Body {
    /// The body as JSON text.
    #[arg(long, conflicts_with = "file")]
    pub data: Option<String>,
    /// A file holding the JSON body (`-`: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// What to do with a resource.
#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// List (one page, or every page with --all).
    List {
        /// profiles: the client whose profiles to list.
        #[arg(long)]
        client: Option<String>,
        /// api-keys: the profile whose keys to list.
        #[arg(long)]
        profile: Option<String>,
        /// clients: only this project's.
        #[arg(long)]
        project: Option<String>,
        /// clients: only names containing this text.
        #[arg(long)]
        search: Option<String>,
        /// Page size (default 50, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Follow `next_cursor` to the end.
        #[arg(long)]
        all: bool,
    },
    /// Show one.
    Get {
        /// Its id.
        id: String,
    },
    /// Create one from a JSON body; secrets in the answer are shown this once.
    Create {
        /// profiles: the client to create it under.
        #[arg(long)]
        client: Option<String>,
        /// api-keys: the profile to create it under.
        #[arg(long)]
        profile: Option<String>,
        /// The body.
        #[command(flatten)]
        body: Body,
        /// Write the answer's secrets to this new file (mode 0600) instead of printing them.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Change one with a JSON Merge Patch (RFC 7396).
    Update {
        /// Its id.
        id: String,
        /// The merge patch.
        #[command(flatten)]
        body: Body,
    },
    /// Delete one.
    Delete {
        /// Its id.
        id: String,
    },
    /// collections, profiles: a new secret; api-keys: a new key value. Shown this once.
    RefreshSecret {
        /// Its id.
        id: String,
        /// Keep the previous one valid this many seconds.
        #[arg(long)]
        grace_seconds: Option<i64>,
        /// Write the new secret to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

/// Signing-key actions.
#[derive(Debug, Clone, Subcommand)]
pub enum KeyAction {
    /// The signing keys (never private material).
    List,
    /// Activate the published next key and publish a new one.
    Rotate {
        /// Rotate even if the next key was published less than the publish-ahead time ago.
        #[arg(long)]
        force: bool,
    },
}

/// Audit actions.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditAction {
    /// Audit events, oldest first.
    List {
        /// Only this actor's.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (e.g. `client.update`).
        #[arg(long)]
        action: Option<String>,
        /// Only events about this id.
        #[arg(long)]
        target_id: Option<String>,
        /// From (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Until (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Page size.
        #[arg(long)]
        limit: Option<u32>,
        /// Follow `next_cursor` to the end.
        #[arg(long)]
        all: bool,
    },
}

/// The commands that talk to a running server.
#[derive(Debug, Clone, Subcommand)]
pub enum RemoteCommand {
    /// Get an access token with client credentials (RFC 6749 §4.4).
    Token {
        /// Scopes to ask for (space-separated).
        #[arg(long)]
        scope: Option<String>,
        /// Resource indicators (RFC 8707); repeatable.
        #[arg(long)]
        resource: Vec<String>,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Introspect a token or API key as an admin (RFC 7662).
    Introspect {
        /// The token or API key.
        token: String,
        /// The consumer's address, for profiles with IP rules.
        #[arg(long)]
        client_ip: Option<String>,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke a token or API key as an admin (RFC 7009).
    Revoke {
        /// The token or API key.
        token: String,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// API collections (resource servers).
    Collections {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Projects (groups of clients).
    Projects {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Clients (the organisations that consume APIs).
    Clients {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Access profiles.
    Profiles {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// API keys of `token` profiles.
    ApiKeys {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Policies (rate limits, quotas).
    Policies {
        /// What to do.
        #[command(subcommand)]
        action: Action,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Signing keys, through the admin API (`gatehouse keys` works on the database instead).
    SigningKeys {
        /// What to do.
        #[command(subcommand)]
        action: KeyAction,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// Usage of a profile or a client: tokens issued, active introspections, denials.
    Usage {
        /// The profile's id.
        #[arg(long, conflicts_with = "client", required_unless_present = "client")]
        profile: Option<String>,
        /// The client's id.
        #[arg(long)]
        client: Option<String>,
        /// From (RFC 3339; default 24 h before `to`).
        #[arg(long)]
        from: Option<String>,
        /// Until (RFC 3339; default now).
        #[arg(long)]
        to: Option<String>,
        /// `hour` or `day`.
        #[arg(long)]
        granularity: Option<String>,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
    /// The audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
        /// Credentials and output.
        #[command(flatten)]
        conn: Conn,
    },
}

/// Why a command stopped, with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The server refused (exit 1): its error body.
    Refused {
        /// HTTP status.
        status: u16,
        /// The answer.
        body: Value,
    },
    /// Bad usage (exit 2).
    Usage(String),
    /// The server could not be reached (exit 3).
    Unreachable(String),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Refused { .. } => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
        }
    }

    /// Print the failure to standard error.
    pub fn report(&self) {
        match self {
            Failure::Refused { status, body } => {
                let code = body["error"].as_str().unwrap_or("error");
                let message = body["message"]
                    .as_str()
                    .or_else(|| body["error_description"].as_str())
                    .unwrap_or("");
                eprintln!("error: {status} {code}: {message}");
                for f in body["fields"].as_array().into_iter().flatten() {
                    eprintln!(
                        "  {}: {}: {}",
                        f["field"].as_str().unwrap_or("?"),
                        f["code"].as_str().unwrap_or("?"),
                        f["message"].as_str().unwrap_or("")
                    );
                }
            }
            Failure::Usage(why) => eprintln!("usage error: {why}"),
            Failure::Unreachable(why) => eprintln!("unreachable: {why}"),
        }
    }
}

type Outcome<T> = Result<T, Failure>;

/// Run a remote command. `issuer` and `admin_url` are the global `--issuer` / `--admin-url`
/// settings (`GATEHOUSE_ISSUER`, `GATEHOUSE_ADMIN_URL`).
pub async fn run(
    command: RemoteCommand,
    issuer: Option<String>,
    admin_url: Option<String>,
) -> ExitCode {
    match execute(command, issuer, admin_url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code())
        }
    }
}

/// The resolved connection: where, as whom, how to print.
struct Session {
    http: reqwest::Client,
    issuer: String,
    admin_url: String,
    client_id: String,
    client_secret: String,
    output: OutputFormat,
}

#[derive(serde::Deserialize, Default)]
struct CredentialsFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    issuer: Option<String>,
    admin_url: Option<String>,
}

fn read_credentials(path: &Path) -> Outcome<CredentialsFile> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Failure::Usage(format!("credentials file {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::Usage(format!(
                "credentials file {} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("credentials file {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|_| {
        Failure::Usage(format!(
            "credentials file {} is not JSON {{client_id, client_secret, issuer?, admin_url?}}",
            path.display()
        ))
    })
}

fn nonblank(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl Session {
    fn open(conn: &Conn, issuer: Option<String>, admin_url: Option<String>) -> Outcome<Self> {
        let file = match &conn.credentials_file {
            Some(path) => read_credentials(path)?,
            None => CredentialsFile::default(),
        };
        let client_id = nonblank(conn.client_id.clone())
            .or(file.client_id)
            .ok_or_else(|| {
                Failure::Usage(
                    "no client id: give --client-id, GATEHOUSE_CLIENT_ID or --credentials-file"
                        .to_owned(),
                )
            })?;
        let client_secret = nonblank(conn.client_secret.clone())
            .or(file.client_secret)
            .ok_or_else(|| {
                Failure::Usage(
                    "no client secret: give --client-secret, GATEHOUSE_CLIENT_SECRET or --credentials-file"
                        .to_owned(),
                )
            })?;
        let issuer = nonblank(issuer)
            .or(file.issuer)
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let admin_url = nonblank(admin_url)
            .or(file.admin_url)
            .unwrap_or_else(|| "http://127.0.0.1:8081".to_owned());
        let output = conn.output.unwrap_or_else(|| {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                OutputFormat::Table
            } else {
                OutputFormat::Json
            }
        });
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Failure::Usage(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            issuer: issuer.trim_end_matches('/').to_owned(),
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            client_id,
            client_secret,
            output,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Outcome<(u16, Value)> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unreachable(format!("{url}: {e}")))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(
                |_| json!({"error": "unexpected_answer", "message": String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()}),
            )
        };
        if status >= 400 {
            return Err(Failure::Refused { status, body });
        }
        Ok((status, body))
    }

    /// A client-credentials token for this session's client.
    async fn token(&self, scope: Option<&str>, resources: &[String]) -> Outcome<Value> {
        let url = format!("{}/oauth/token", self.issuer);
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        for r in resources {
            form.push(("resource", r));
        }
        let request = self
            .http
            .post(&url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form);
        Ok(self.send(request, &url).await?.1)
    }

    /// An admin token: `gatehouse:admin` to change, `gatehouse:admin:read` to read.
    async fn admin_token(&self, write: bool) -> Outcome<String> {
        let scope = if write {
            "gatehouse:admin"
        } else {
            "gatehouse:admin:read"
        };
        let answer = self.token(Some(scope), &[]).await?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or(Failure::Refused {
                status: 200,
                body: json!({"error": "unexpected_answer", "message": "no access_token in the token answer"}),
            })
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Outcome<Value> {
        let write = method != reqwest::Method::GET;
        let token = self.admin_token(write).await?;
        let url = format!("{}/admin/v1{path}", self.admin_url);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(token);
        if let Some(body) = body {
            let content_type = if method == reqwest::Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_string());
        }
        Ok(self.send(request, &url).await?.1)
    }

    async fn oauth_as_admin(
        &self,
        path: &str,
        write: bool,
        form: &[(&str, &str)],
    ) -> Outcome<Value> {
        let token = self.admin_token(write).await?;
        let url = format!("{}{path}", self.issuer);
        let request = self.http.post(&url).bearer_auth(token).form(form);
        Ok(self.send(request, &url).await?.1)
    }

    async fn list_pages(&self, path: &str, limit: Option<u32>, all: bool) -> Outcome<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            if let Some(c) = &cursor {
                query.push(format!("cursor={}", encode(c)));
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            let full = if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}{sep}{}", query.join("&"))
            };
            let page: Page<Value> = decode(self.admin(reqwest::Method::GET, &full, None).await?)?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) if all => cursor = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// Percent-encode a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decode an answer into the type the OpenAPI document promises.
fn decode<T: DeserializeOwned>(value: Value) -> Outcome<T> {
    serde_json::from_value(value).map_err(|e| Failure::Refused {
        status: 200,
        body: json!({"error": "unexpected_answer",
                     "message": format!("the answer does not follow the admin API's document: {e}")}),
    })
}

/// Read a body (inline or file) and check it against the server's own wire type `T`.
fn body<T: DeserializeOwned>(b: &Body) -> Outcome<Value> {
    let text = match (&b.data, &b.file) {
        (Some(d), _) => d.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| Failure::Usage(format!("standard input: {e}")))?;
            s
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        (None, None) => {
            return Err(Failure::Usage(
                "give the body with --data or --file".to_owned(),
            ));
        }
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("the body is not JSON: {e}")))?;
    serde_json::from_value::<T>(value.clone())
        .map_err(|e| Failure::Usage(format!("the body does not fit the admin API: {e}")))?;
    Ok(value)
}

/// The answer's secrets go to `file` (created, mode 0600) instead of the output; the output
/// then says where they went.
fn divert_secrets(answer: &mut Value, fields: &[&str], file: Option<&Path>) -> Outcome<()> {
    let Some(path) = file else {
        return Ok(());
    };
    let mut secrets = serde_json::Map::new();
    if let Some(map) = answer.as_object_mut() {
        for f in fields {
            if let Some(v) = map.get_mut(*f)
                && v.is_string()
            {
                secrets.insert((*f).to_owned(), v.take());
                *v = json!(format!("(written to {})", path.display()));
            }
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| Failure::Usage(format!("secret file {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut f, format!("{}\n", Value::Object(secrets)).as_bytes())
        .map_err(|e| Failure::Usage(format!("secret file {}: {e}", path.display())))?;
    Ok(())
}

/// The secret members of create and refresh answers.
const SECRET_FIELDS: [&str; 4] = [
    "introspection_client_secret",
    "oauth_client_secret",
    "auth_token",
    "jwt_secret",
];

#[derive(Clone, Copy)]
enum Resource {
    Collections,
    Projects,
    Clients,
    Profiles,
    ApiKeys,
    Policies,
}

impl Resource {
    fn base(self) -> &'static str {
        match self {
            Resource::Collections => "/collections",
            Resource::Projects => "/projects",
            Resource::Clients => "/clients",
            Resource::Profiles => "/access-profiles",
            Resource::ApiKeys => "/api-keys",
            Resource::Policies => "/policies",
        }
    }
}

async fn crud(s: &Session, r: Resource, action: Action) -> Outcome<()> {
    use reqwest::Method;
    match action {
        Action::List {
            client,
            profile,
            project,
            search,
            limit,
            all,
        } => {
            let path = match r {
                Resource::Profiles => format!(
                    "/clients/{}/access-profiles",
                    client
                        .ok_or_else(|| Failure::Usage("profiles list needs --client".to_owned()))?
                ),
                Resource::ApiKeys => format!(
                    "/access-profiles/{}/api-keys",
                    profile.ok_or_else(|| Failure::Usage(
                        "api-keys list needs --profile".to_owned()
                    ))?
                ),
                Resource::Clients => {
                    let mut q = Vec::new();
                    if let Some(p) = project {
                        q.push(format!("project={}", encode(&p)));
                    }
                    if let Some(t) = search {
                        q.push(format!("q={}", encode(&t)));
                    }
                    if q.is_empty() {
                        "/clients".to_owned()
                    } else {
                        format!("/clients?{}", q.join("&"))
                    }
                }
                other => other.base().to_owned(),
            };
            let items = s.list_pages(&path, limit, all).await?;
            match r {
                Resource::Collections => show_list::<Collection>(s, items),
                Resource::Projects => show_list::<Project>(s, items),
                Resource::Clients => show_list::<Client>(s, items),
                Resource::Profiles => show_list::<Profile>(s, items),
                Resource::ApiKeys => show_list::<ApiKey>(s, items),
                Resource::Policies => show_list::<Policy>(s, items),
            }
        }
        Action::Get { id } => {
            let v = s
                .admin(Method::GET, &format!("{}/{}", r.base(), encode(&id)), None)
                .await?;
            show_one(s, r, v)
        }
        Action::Create {
            client,
            profile,
            body: b,
            secret_file,
        } => {
            use gatehouse_admin::wire;
            let (path, data) = match r {
                Resource::Collections => (
                    "/collections".to_owned(),
                    body::<wire::CollectionInput>(&b)?,
                ),
                Resource::Projects => (
                    "/projects".to_owned(),
                    body::<gatehouse_admin::projects::ProjectInput>(&b)?,
                ),
                Resource::Clients => ("/clients".to_owned(), body::<wire::ClientInput>(&b)?),
                Resource::Policies => ("/policies".to_owned(), body::<wire::PolicyInput>(&b)?),
                Resource::Profiles => (
                    format!(
                        "/clients/{}/access-profiles",
                        encode(&client.ok_or_else(|| Failure::Usage(
                            "profiles create needs --client".to_owned()
                        ))?)
                    ),
                    body::<wire::ProfileInput>(&b)?,
                ),
                Resource::ApiKeys => (
                    format!(
                        "/access-profiles/{}/api-keys",
                        encode(&profile.ok_or_else(|| Failure::Usage(
                            "api-keys create needs --profile".to_owned()
                        ))?)
                    ),
                    body::<wire::ApiKeyInput>(&b)?,
                ),
            };
            let mut v = s.admin(Method::POST, &path, Some(&data)).await?;
            match r {
                Resource::Collections => drop(decode::<CollectionCreated>(v.clone())?),
                Resource::Profiles => drop(decode::<ProfileCreated>(v.clone())?),
                Resource::ApiKeys => drop(decode::<ApiKeyIssued>(v.clone())?),
                _ => {}
            }
            divert_secrets(&mut v, &SECRET_FIELDS, secret_file.as_deref())?;
            show_one(s, r, v)
        }
        Action::Update { id, body: b } => {
            use gatehouse_admin::wire;
            let data = match r {
                Resource::Collections => body::<wire::CollectionPatchInput>(&b)?,
                Resource::Projects => body::<gatehouse_admin::projects::ProjectPatchInput>(&b)?,
                Resource::Clients => body::<wire::ClientPatchInput>(&b)?,
                Resource::Policies => body::<wire::PolicyPatchInput>(&b)?,
                Resource::Profiles => body::<wire::ProfilePatchInput>(&b)?,
                Resource::ApiKeys => body::<wire::ApiKeyPatchInput>(&b)?,
            };
            let v = s
                .admin(
                    Method::PATCH,
                    &format!("{}/{}", r.base(), encode(&id)),
                    Some(&data),
                )
                .await?;
            show_one(s, r, v)
        }
        Action::Delete { id } => {
            s.admin(
                Method::DELETE,
                &format!("{}/{}", r.base(), encode(&id)),
                None,
            )
            .await?;
            print_object(s.output, &json!({"deleted": id}));
            Ok(())
        }
        Action::RefreshSecret {
            id,
            grace_seconds,
            secret_file,
        } => {
            let path = match r {
                Resource::Collections | Resource::Profiles => {
                    format!("{}/{}/secret", r.base(), encode(&id))
                }
                Resource::ApiKeys => format!("/api-keys/{}/refresh", encode(&id)),
                _ => {
                    return Err(Failure::Usage(
                        "refresh-secret applies to collections, profiles and api-keys".to_owned(),
                    ));
                }
            };
            let data = match grace_seconds {
                Some(g) => json!({"grace_seconds": g}),
                None => json!({}),
            };
            let mut v = s.admin(Method::POST, &path, Some(&data)).await?;
            match r {
                Resource::Collections => drop(decode::<CollectionSecretIssued>(v.clone())?),
                Resource::Profiles => drop(decode::<ProfileSecretIssued>(v.clone())?),
                _ => drop(decode::<ApiKeyIssued>(v.clone())?),
            }
            divert_secrets(&mut v, &SECRET_FIELDS, secret_file.as_deref())?;
            print_object(s.output, &v);
            Ok(())
        }
    }
}

fn show_list<T: DeserializeOwned + Row>(s: &Session, items: Vec<Value>) -> Outcome<()> {
    let typed: Vec<T> = items
        .iter()
        .cloned()
        .map(decode)
        .collect::<Outcome<Vec<T>>>()?;
    print_items(s.output, &typed, &items);
    Ok(())
}

fn show_one(s: &Session, r: Resource, v: Value) -> Outcome<()> {
    match r {
        Resource::Collections => drop(decode::<Collection>(v.clone())?),
        Resource::Projects => drop(decode::<Project>(v.clone())?),
        Resource::Clients => drop(decode::<Client>(v.clone())?),
        Resource::Profiles => drop(decode::<Profile>(v.clone())?),
        Resource::ApiKeys => drop(decode::<ApiKey>(v.clone())?),
        Resource::Policies => drop(decode::<Policy>(v.clone())?),
    }
    print_object(s.output, &v);
    Ok(())
}

async fn execute(
    command: RemoteCommand,
    issuer: Option<String>,
    admin_url: Option<String>,
) -> Outcome<()> {
    use reqwest::Method;
    let open = |conn: &Conn| Session::open(conn, issuer.clone(), admin_url.clone());
    match command {
        RemoteCommand::Token {
            scope,
            resource,
            conn,
        } => {
            let s = open(&conn)?;
            let answer = s.token(scope.as_deref(), &resource).await?;
            print_object(s.output, &answer);
            Ok(())
        }
        RemoteCommand::Introspect {
            token,
            client_ip,
            conn,
        } => {
            let s = open(&conn)?;
            let mut form = vec![("token", token.as_str())];
            if let Some(ip) = &client_ip {
                form.push(("client_ip", ip));
            }
            let answer = s.oauth_as_admin("/oauth/introspect", false, &form).await?;
            print_object(s.output, &answer);
            Ok(())
        }
        RemoteCommand::Revoke { token, conn } => {
            let s = open(&conn)?;
            s.oauth_as_admin("/oauth/revoke", true, &[("token", token.as_str())])
                .await?;
            print_object(s.output, &json!({"revoked": true}));
            Ok(())
        }
        RemoteCommand::Collections { action, conn } => {
            crud(&open(&conn)?, Resource::Collections, action).await
        }
        RemoteCommand::Projects { action, conn } => {
            crud(&open(&conn)?, Resource::Projects, action).await
        }
        RemoteCommand::Clients { action, conn } => {
            crud(&open(&conn)?, Resource::Clients, action).await
        }
        RemoteCommand::Profiles { action, conn } => {
            crud(&open(&conn)?, Resource::Profiles, action).await
        }
        RemoteCommand::ApiKeys { action, conn } => {
            crud(&open(&conn)?, Resource::ApiKeys, action).await
        }
        RemoteCommand::Policies { action, conn } => {
            crud(&open(&conn)?, Resource::Policies, action).await
        }
        RemoteCommand::SigningKeys { action, conn } => {
            let s = open(&conn)?;
            match action {
                KeyAction::List => {
                    let v = s.admin(Method::GET, "/keys", None).await?;
                    let items = v["items"].as_array().cloned().unwrap_or_default();
                    show_list::<gatehouse_jwks::KeyView>(&s, items)
                }
                KeyAction::Rotate { force } => {
                    let v = s
                        .admin(Method::POST, "/keys/rotate", Some(&json!({"force": force})))
                        .await?;
                    drop(decode::<gatehouse_jwks::Rotation>(v.clone())?);
                    print_object(s.output, &v);
                    Ok(())
                }
            }
        }
        RemoteCommand::Usage {
            profile,
            client,
            from,
            to,
            granularity,
            conn,
        } => {
            let s = open(&conn)?;
            let base = match (profile, client) {
                (Some(p), _) => format!("/access-profiles/{}/usage", encode(&p)),
                (None, Some(c)) => format!("/clients/{}/usage", encode(&c)),
                (None, None) => {
                    return Err(Failure::Usage("give --profile or --client".to_owned()));
                }
            };
            let mut q = Vec::new();
            for (k, v) in [("from", from), ("to", to), ("granularity", granularity)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let path = if q.is_empty() {
                base
            } else {
                format!("{base}?{}", q.join("&"))
            };
            let v = s.admin(Method::GET, &path, None).await?;
            let report: UsageReport = decode(v.clone())?;
            match s.output {
                OutputFormat::Json => print_object(s.output, &v),
                OutputFormat::Table => output::print_usage(&report),
            }
            Ok(())
        }
        RemoteCommand::Audit { action, conn } => {
            let s = open(&conn)?;
            let AuditAction::List {
                actor,
                action,
                target_id,
                from,
                to,
                limit,
                all,
            } = action;
            let mut q = Vec::new();
            for (k, v) in [
                ("actor", actor),
                ("action", action),
                ("target_id", target_id),
                ("from", from),
                ("to", to),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let path = if q.is_empty() {
                "/audit-events".to_owned()
            } else {
                format!("/audit-events?{}", q.join("&"))
            };
            let items = s.list_pages(&path, limit, all).await?;
            show_list::<AuditEvent>(&s, items)
        }
    }
}
