//! `carelens serve`, `carelens users add` and the demo's serve step: the HTTP server with
//! the doctors' web view on the opened store, prediction runs over HTTP on this binary's burn
//! backend, and the demo's sign-in accounts.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use carelens_domain::{AppointmentStatus, HealthId, PredictionSet, ProviderId, Role, User, UserId};
use carelens_predict::BatchOptions;
use carelens_server::{AppState, PredictionRunner, RunRequest, ServerConfig, TokenKey};
use carelens_store::{ObjectStore, PageRequest, Store};
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::demo_keys::DemoKeys;
use crate::cli::{AddUserArgs, ServeArgs};
use crate::context::{Context, Light};
use crate::{env, output};

/// Runs prediction batches started with `POST /api/v1/prediction-runs`.
struct Runner {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    light: Light,
    as_of: NaiveDate,
}

impl PredictionRunner for Runner {
    fn run(&self, request: &RunRequest, progress: &(dyn Fn(u64) + Sync)) -> Result<serde_json::Value, String> {
        let mut opts = BatchOptions::new(self.as_of);
        opts.patients = request.patients.clone();
        opts.heatmaps = request.heatmaps;
        super::predict::predict_batch(&*self.store, &*self.objects, &self.runtime, &self.light, true, &opts, progress)
            .and_then(|r| serde_json::to_value(r).context("serialising the report"))
            .map_err(|e| format!("{e:#}"))
    }
}

fn token_key(quiet: bool) -> Result<TokenKey> {
    match std::env::var(env::CARELENS_TOKEN_KEY) {
        Ok(hex) if !hex.trim().is_empty() => TokenKey::from_hex(&hex).context(env::CARELENS_TOKEN_KEY),
        _ => {
            if !quiet {
                eprintln!(
                    "note: tokens are signed with a key made at start, so a restart signs everyone out; set {} \
                     (64 hex digits, e.g. from `openssl rand -hex 32`) to keep sessions across restarts",
                    env::CARELENS_TOKEN_KEY
                );
            }
            Ok(TokenKey::random()?)
        }
    }
}

fn state(ctx: &Context, light: &Light, args: &ServeArgs, demo: Option<&DemoKeys>) -> Result<AppState> {
    let runner = Runner {
        store: ctx.store.clone(),
        objects: ctx.objects.clone(),
        runtime: ctx.runtime.handle().clone(),
        light: light.clone(),
        as_of: super::predict::default_as_of(ctx)?,
    };
    let config = ServerConfig {
        token_ttl: std::time::Duration::from_secs(args.token_ttl_minutes * 60),
        ..ServerConfig::default()
    };
    let state = AppState::new(
        ctx.store.clone(),
        ctx.objects.clone(),
        light.models.clone(),
        token_key(ctx.quiet)?,
        config,
        Some(Arc::new(runner)),
    )
    .with_analytics(super::analytics::cache_dir(ctx));
    let keys = match demo {
        Some(d) => Some(d.keyring.clone()),
        None => carelens_records::keys::Keyring::from_env()?,
    };
    Ok(match keys {
        Some(keys) => state.with_keys(keys),
        None => {
            if !ctx.quiet {
                eprintln!(
                    "note: {} is not set, so document uploads and prescriptions are refused (make one with \
                     `carelens records keygen`){}",
                    crate::env::CARELENS_MASTER_KEY,
                    demo_hint(ctx)
                );
            }
            state
        }
    })
}

/// For a demo data directory served by `serve`: where its keys are.
fn demo_hint(ctx: &Context) -> String {
    super::demo_keys::exists(&ctx.data_dir)
        .map(|p| {
            format!("; this demo data directory's keys are in {} (`set -a; . {}; set +a`)", p.display(), p.display())
        })
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct Listening {
    url: String,
    openapi: String,
}

/// Serves until Ctrl-C; `before` runs once the port is bound (the demo prints its accounts).
/// With `any_port_if_taken` (the demo), a taken port falls back to a free one.
fn serve_until_ctrl_c(
    ctx: &Context,
    light: &Light,
    args: &ServeArgs,
    any_port_if_taken: bool,
    demo: Option<&DemoKeys>,
    before: impl FnOnce(&str),
) -> Result<()> {
    let state = state(ctx, light, args, demo)?;
    ctx.runtime.block_on(async {
        let listener = match carelens_server::bind(args.bind).await {
            Err(e) if any_port_if_taken && e.kind() == std::io::ErrorKind::AddrInUse => {
                eprintln!("note: {e}; using a free port instead");
                carelens_server::bind(SocketAddr::new(args.bind.ip(), 0)).await?
            }
            other => other?,
        };
        let addr: SocketAddr = listener.local_addr()?;
        let url = format!("http://{addr}/");
        if ctx.json {
            output::json(&Listening { url: url.clone(), openapi: format!("{url}openapi.json") })?;
        } else {
            outln!("carelens serve: listening on {url}  (doctors' web view at /, API description at /openapi.json; Ctrl-C stops)");
        }
        before(&url);
        use std::io::Write as _;
        std::io::stdout().flush().ok();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mailer = match std::env::var(env::CARELENS_MAIL_URL) {
            Ok(url) if !url.is_empty() => {
                let from = std::env::var(env::CARELENS_MAIL_FROM)
                    .unwrap_or_else(|_| crate::cli::DEFAULT_MAIL_FROM.to_owned());
                let d = Arc::new(super::notify::deliverer(ctx, &url, &from)?);
                if !ctx.json {
                    outln!("delivering booking messages to {} every 30 s", d.transport().location());
                }
                let mut rx = stop_rx.clone();
                let stop = async move {
                    rx.wait_for(|s| *s).await.ok();
                };
                Some(tokio::spawn(carelens_notify::run(d, std::time::Duration::from_secs(30), stop)))
            }
            _ => None,
        };
        // Sign the audit log's head at start, every 5 minutes, and once more on the way out.
        let audit_key = match demo {
            Some(d) => Some(d.audit.clone()),
            None => super::audit::key_from_env()?,
        };
        let signer = match audit_key {
            Some(key) => {
                if !ctx.json {
                    outln!("signing audit checkpoints every 5 minutes (key {}…)", &key.public_hex()[..12]);
                }
                let store = Arc::clone(&ctx.store);
                let mut rx = stop_rx.clone();
                Some(tokio::spawn(async move {
                    let mut stopping = false;
                    loop {
                        match carelens_records::audit::checkpoint(store.as_ref(), &key, chrono::Utc::now()).await {
                            Ok(_) | Err(carelens_records::AuditError::Empty) => {}
                            Err(e) => tracing::warn!(error = %e, "audit checkpoint not written; retrying in 5 minutes"),
                        }
                        if stopping {
                            break;
                        }
                        stopping = tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(300)) => false,
                            _ = rx.wait_for(|s| *s) => true,
                        };
                    }
                }))
            }
            None => None,
        };
        let shutdown = async move {
            tokio::signal::ctrl_c().await.ok();
            eprintln!("carelens serve: stopping (finishing open requests)");
            stop_tx.send(true).ok();
        };
        let served = carelens_server::serve(listener, state, shutdown).await.context("the HTTP server failed");
        if let Some(m) = mailer {
            m.await.ok();
        }
        if let Some(s) = signer {
            s.await.ok();
        }
        drop(stop_rx);
        served
    })
}

/// `carelens serve`.
pub fn run(ctx: &Context, light: &Light, args: &ServeArgs) -> Result<()> {
    let users = ctx.runtime.block_on(ctx.store.list_users())?;
    if users.is_empty() && !ctx.json {
        eprintln!(
            "note: no user accounts yet: `carelens demo` makes demo accounts, `carelens users add` makes real ones"
        );
    }
    serve_until_ctrl_c(ctx, light, args, false, None, |_| {})
}

/// What an account is tied to: a doctor's practice, a patient's record, a mail address.
#[derive(Debug, Default)]
struct Links {
    provider: Option<ProviderId>,
    patient: Option<HealthId>,
    email: Option<String>,
}

/// Saves `username` with a new password hash, keeping the id and creation time of an
/// existing account of that name.
fn save_user(
    ctx: &Context,
    existing: Option<&User>,
    username: &str,
    role: Role,
    password: &str,
    links: Links,
) -> Result<User> {
    let Links { provider, patient, email } = links;
    let user = User {
        id: existing.map_or_else(UserId::random, |u| u.id),
        username: username.to_string(),
        role,
        password_hash: carelens_server::hash_password(password)?,
        provider,
        patient,
        created_at: existing.map_or_else(Utc::now, |u| u.created_at),
        disabled: false,
        email,
        // A new password keeps the account's document-signing keys.
        signing_keys: existing.map(|u| u.signing_keys.clone()).unwrap_or_default(),
    };
    ctx.runtime.block_on(ctx.store.put_user(&user)).with_context(|| format!("saving user {username:?}"))?;
    Ok(user)
}

/// `carelens users add`: the password is read from the environment variable named by
/// `--password-env` (never from the command line, which other users can see).
pub fn add_user(ctx: &Context, args: &AddUserArgs) -> Result<()> {
    let Some(role) = Role::parse(&args.role) else {
        bail!("--role {:?}: one of admin, doctor, patient, analyst, ml-engineer", args.role)
    };
    let password = std::env::var(&args.password_env)
        .with_context(|| format!("set the new user's password in the environment variable {}", args.password_env))?;
    let provider = args.provider.as_deref().map(str::parse::<ProviderId>).transpose().context("--provider")?;
    let patient = args.patient.as_deref().map(str::parse::<HealthId>).transpose().context("--patient")?;
    let existing = ctx.runtime.block_on(ctx.store.user_by_name(&args.username))?;
    if existing.is_some() && !args.reset {
        bail!("user {:?} exists; add --reset to set a new password and role", args.username);
    }
    if let Some(e) = &args.email
        && !carelens_domain::valid_email(e)
    {
        bail!("--email {e:?} is not an e-mail address (local@domain)");
    }
    let links = Links { provider, patient, email: args.email.clone() };
    let user = save_user(ctx, existing.as_ref(), &args.username, role, &password, links)?;
    if ctx.json {
        return output::json(
            &serde_json::json!({"id": user.id.to_string(), "username": user.username, "role": role.as_str()}),
        );
    }
    outln!("{} user {} ({})", if existing.is_some() { "updated" } else { "added" }, user.username, role.as_str());
    Ok(())
}

/// One demo account; the password is new on every demo run and only its hash is stored.
#[derive(Debug, Clone, Serialize)]
pub struct DemoLogin {
    pub role: &'static str,
    pub username: String,
    pub password: String,
    /// For the doctor: a patient in their care with a striking prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub try_patient: Option<String>,
}

/// The practice for the demo doctor: the example patient's, else the busiest one.
fn demo_practice(ctx: &Context, example: Option<&PredictionSet>) -> Result<Option<ProviderId>> {
    if let Some(set) = example {
        let appointments = ctx.runtime.block_on(ctx.store.appointments_for_patient(&set.patient))?;
        if let Some(a) = appointments.iter().rev().find(|a| a.status != AppointmentStatus::Cancelled) {
            return Ok(Some(a.provider.clone()));
        }
    }
    let providers = ctx.runtime.block_on(ctx.store.list_providers(PageRequest::first(50)))?;
    let now = Utc::now();
    let mut best: Option<(usize, ProviderId)> = None;
    for p in providers.items {
        let n = ctx
            .runtime
            .block_on(ctx.store.appointments_for_provider(
                &p.id,
                now - chrono::Duration::days(3650),
                now + chrono::Duration::days(730),
            ))?
            .len();
        if best.as_ref().is_none_or(|(m, _)| n > *m) {
            best = Some((n, p.id));
        }
    }
    Ok(best.map(|(_, id)| id))
}

/// Creates (or resets) the demo's doctor, analyst, ML engineer and admin with fresh random
/// passwords.
pub fn demo_logins(ctx: &Context, example: Option<&PredictionSet>) -> Result<Vec<DemoLogin>> {
    let practice = demo_practice(ctx, example)?;
    let mut accounts =
        vec![(Role::Analyst, "demo.analyst"), (Role::MlEngineer, "demo.ml"), (Role::Admin, "demo.admin")];
    if practice.is_some() {
        accounts.insert(0, (Role::Doctor, "demo.doctor"));
    }
    // A patient account (the example patient) to try booking with.
    if example.is_some() {
        accounts.insert(1, (Role::Patient, "demo.patient"));
    }
    let mut out = Vec::new();
    for (role, username) in accounts {
        let password = carelens_server::generate_password(16)?;
        let existing = ctx.runtime.block_on(ctx.store.user_by_name(username))?;
        let provider = (role == Role::Doctor).then(|| practice.clone()).flatten();
        let patient = (role == Role::Patient).then(|| example.map(|s| s.patient.clone())).flatten();
        let email = patient.as_ref().map(|_| format!("{username}@example.org"));
        save_user(ctx, existing.as_ref(), username, role, &password, Links { provider, patient, email })?;
        out.push(DemoLogin {
            role: role.as_str(),
            username: username.to_string(),
            password,
            try_patient: (role == Role::Doctor).then(|| example.map(|s| s.patient.as_str().to_string())).flatten(),
        });
    }
    Ok(out)
}

pub fn print_logins(url: &str, logins: &[DemoLogin]) {
    outln!("open {url} and sign in as:");
    for l in logins {
        outln!(
            "  {:<12} {:<14} password {}{}",
            l.role,
            l.username,
            l.password,
            l.try_patient.as_deref().map(|p| format!("   (try patient {p})")).unwrap_or_default()
        );
    }
    outln!("(new passwords on every demo run; only argon2id hashes are stored)");
}

/// The demo's last step: serve until Ctrl-C with the accounts printed.
pub fn demo_serve(ctx: &Context, light: &Light, args: &ServeArgs, keys: &DemoKeys, logins: &[DemoLogin]) -> Result<()> {
    serve_until_ctrl_c(ctx, light, args, true, Some(keys), |url| {
        if !ctx.json {
            print_logins(url, logins);
        }
    })
}
