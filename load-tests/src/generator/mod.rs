//! Realistic, deterministic Sentry events. Each of `issues` issues is fixed by the seed: its
//! platform, exception type and in-app frames (module, file, function, context line), so every
//! event of issue k groups into the same issue the way Sentry groups by in-app frames. What varies
//! per event: the exception value's parameters, line numbers (they move with the release), the
//! framework frames around the app's, breadcrumbs, tags, user, release and size. Event `seq` of a
//! seed is always the same event apart from its id and time. No I/O, no clock.

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

mod catalog;

use crate::envelope;
use crate::scenario::EventMix;
use catalog::{
    AREAS, ExceptionKind, NOUNS, STATES, VERBS, WORDS, exceptions, inner_frames, layers,
    outer_frames,
};

/// The tag carrying the run id: every event of a run has it, so the run's events can be counted.
pub const RUN_TAG: &str = "shrike_load_run";
/// The tag carrying the generator's issue number (0-based).
pub const ISSUE_TAG: &str = "shrike_load_issue";

/// The SDK platform an event imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// sentry-python with Django.
    Python,
    /// sentry-javascript on Node with Express.
    Javascript,
    /// sentry-java with Spring Boot.
    Java,
    /// sentry-rust with axum.
    Rust,
}

impl Platform {
    /// Every platform, in weight order.
    pub const ALL: [Platform; 4] = [
        Platform::Python,
        Platform::Javascript,
        Platform::Java,
        Platform::Rust,
    ];

    /// Sentry's platform name.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Python => "python",
            Platform::Javascript => "javascript",
            Platform::Java => "java",
            Platform::Rust => "rust",
        }
    }
}

/// A generated envelope kept to be sent again with other event ids.
#[derive(Debug, Clone)]
pub struct Template {
    issue: u32,
    platform: Platform,
    payload_len: usize,
    gzip: bool,
    body: Vec<u8>,
    /// Where the event id (32 hex digits) is written in `body`.
    id_at: Vec<usize>,
}

impl Template {
    /// The envelope with `event_id` in every place the template's id was, compressed when the
    /// mix says so.
    pub fn instantiate(&self, seq: u64, event_id: Uuid) -> GeneratedEvent {
        let mut body = self.body.clone();
        let mut buffer = Uuid::encode_buffer();
        let hex = event_id.simple().encode_lower(&mut buffer).as_bytes();
        for &at in &self.id_at {
            body[at..at + hex.len()].copy_from_slice(hex);
        }
        let body = if self.gzip {
            envelope::gzip(&body)
        } else {
            body
        };
        GeneratedEvent {
            seq,
            issue: self.issue,
            platform: self.platform,
            event_id,
            payload_len: self.payload_len,
            gzip: self.gzip,
            body,
        }
    }
}

/// One generated request body and what it contains.
#[derive(Debug, Clone)]
pub struct GeneratedEvent {
    /// Position in the run's sequence.
    pub seq: u64,
    /// The generator's issue number.
    pub issue: u32,
    /// The imitated platform.
    pub platform: Platform,
    /// The event id (also in the envelope header).
    pub event_id: Uuid,
    /// Size of the event JSON, before compression.
    pub payload_len: usize,
    /// Whether `body` is gzip-compressed.
    pub gzip: bool,
    /// The request body: the envelope, gzip-compressed when `gzip`.
    pub body: Vec<u8>,
}

/// A fixed frame description: the parts that decide grouping.
#[derive(Debug, Clone)]
struct FrameSpec {
    function: String,
    module: Option<String>,
    filename: String,
    abs_path: String,
    lineno: u32,
    context: Option<(Vec<String>, String, Vec<String>)>,
    in_app: bool,
}

/// Everything that makes issue k issue k.
#[derive(Debug, Clone)]
struct IssueDef {
    platform: Platform,
    exception: &'static ExceptionKind,
    in_app: Vec<FrameSpec>,
    inner: Vec<FrameSpec>,
    transaction: String,
    logger: String,
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn camel(verb: &str, noun: &str) -> String {
    format!("{verb}{}", capitalize(noun))
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// A line of plausible source code for a frame.
fn code_line(platform: Platform, rng: &mut ChaCha8Rng, verb: &str, noun: &str) -> String {
    let word = pick(rng, &WORDS);
    let other = pick(rng, &NOUNS);
    match platform {
        Platform::Python => match rng.random_range(0..4) {
            0 => format!("    {noun} = {other}_service.{verb}_{noun}({noun}_id, {word}={word})"),
            1 => format!("    if {noun}.{word} is None and not {other}.is_active:"),
            2 => format!("    result[\"{word}\"] = int(payload[\"{word}\"]) / {noun}.{word}"),
            _ => format!("    return {other}_repository.{verb}({noun}, strict=True)"),
        },
        Platform::Javascript => match rng.random_range(0..4) {
            0 => format!(
                "  const {noun} = await this.{other}Service.{}({noun}Id, {{ {word} }});",
                camel(verb, noun)
            ),
            1 => format!("  if (!{noun}.{word} && {other}.isActive) {{"),
            2 => format!("  result.{word} = Number(payload.{word}) / {noun}.{word};"),
            _ => format!("  return {other}Repository.{verb}({noun}, {{ strict: true }});"),
        },
        Platform::Java | Platform::Rust => String::new(),
    }
}

fn issue_def(k: u32, mix: &EventMix, platform: Platform, rng: &mut ChaCha8Rng) -> IssueDef {
    let kinds = exceptions(platform);
    let exception = &kinds[rng.random_range(0..kinds.len())];
    let area = AREAS[rng.random_range(0..AREAS.len())];
    let app_frames = rng.random_range(2..=5usize);
    let inner_count = if rng.random_bool(0.5) { 1 } else { 0 };
    // Leave room for the framework frames: in-app plus inner never exceeds frames.min - 1.
    let app_frames = app_frames
        .min(mix.frames.min.saturating_sub(1 + inner_count))
        .max(1);
    let mut in_app = Vec::with_capacity(app_frames);
    for i in 0..app_frames {
        let innermost = i + 1 == app_frames;
        // The innermost app frame's function is unique per issue: issues never collide.
        let (verb, noun, suffix) = if innermost {
            let k = k as usize;
            let suffix = if k >= VERBS.len() * NOUNS.len() {
                format!("_{}", k / (VERBS.len() * NOUNS.len()))
            } else {
                String::new()
            };
            (
                VERBS[k % VERBS.len()],
                NOUNS[(k / VERBS.len()) % NOUNS.len()],
                suffix,
            )
        } else {
            (pick(rng, &VERBS), pick(rng, &NOUNS), String::new())
        };
        let layer = pick(rng, layers(platform));
        let area = if innermost { area } else { pick(rng, &AREAS) };
        let lineno = rng.random_range(12..480);
        let spec = match platform {
            Platform::Python => FrameSpec {
                function: format!("{verb}_{noun}{suffix}"),
                module: Some(format!("shop.{area}.{layer}")),
                filename: format!("shop/{area}/{layer}.py"),
                abs_path: format!("/srv/shop/{area}/{layer}.py"),
                lineno,
                context: None,
                in_app: true,
            },
            Platform::Javascript => FrameSpec {
                function: format!(
                    "{}{}.{}{suffix}",
                    capitalize(noun),
                    capitalize(layer),
                    camel(verb, noun)
                ),
                module: Some(format!("src.{layer}:{area}")),
                filename: format!("/app/src/{layer}/{area}.js"),
                abs_path: format!("/app/src/{layer}/{area}.js"),
                lineno,
                context: None,
                in_app: true,
            },
            Platform::Java => FrameSpec {
                function: format!("{}{suffix}", camel(verb, noun)),
                module: Some(format!(
                    "com.example.shop.{area}.{}{layer}",
                    capitalize(noun)
                )),
                filename: format!("{}{layer}.java", capitalize(noun)),
                abs_path: format!("{}{layer}.java", capitalize(noun)),
                lineno,
                context: None,
                in_app: true,
            },
            Platform::Rust => FrameSpec {
                function: format!("shop_api::{area}::{layer}::{verb}_{noun}{suffix}"),
                module: None,
                filename: format!("src/{area}/{layer}.rs"),
                abs_path: format!("/build/shop-api/src/{area}/{layer}.rs"),
                lineno,
                context: None,
                in_app: true,
            },
        };
        let context = matches!(platform, Platform::Python | Platform::Javascript).then(|| {
            let pre = (0..5)
                .map(|_| code_line(platform, rng, verb, noun))
                .collect();
            let line = code_line(platform, rng, verb, noun);
            let post = (0..5)
                .map(|_| code_line(platform, rng, verb, noun))
                .collect();
            (pre, line, post)
        });
        in_app.push(FrameSpec { context, ..spec });
    }
    let inner = (0..inner_count)
        .map(|_| {
            let (module, function, filename, abs_path, line) = pick(rng, inner_frames(platform));
            system_spec(
                module,
                function,
                filename,
                abs_path,
                line,
                rng.random_range(20..900),
            )
        })
        .collect();
    let noun = pick(rng, &NOUNS);
    let transaction = match platform {
        Platform::Python => format!("/api/{area}/{noun}s/{{id}}/"),
        Platform::Javascript => format!("POST /api/{area}/{noun}s/:id"),
        Platform::Java => format!("{}Controller.{}", capitalize(noun), camel("handle", area)),
        Platform::Rust => format!("POST /{area}/{noun}s/{{id}}"),
    };
    let logger = match platform {
        Platform::Python => format!("shop.{area}"),
        Platform::Javascript => format!("storefront:{area}"),
        Platform::Java => format!("com.example.shop.{area}"),
        Platform::Rust => format!("shop_api::{area}"),
    };
    IssueDef {
        platform,
        exception,
        in_app,
        inner,
        transaction,
        logger,
    }
}

fn system_spec(
    module: &str,
    function: &str,
    filename: &str,
    abs_path: &str,
    line: &str,
    lineno: u32,
) -> FrameSpec {
    FrameSpec {
        function: function.to_owned(),
        module: (!module.is_empty()).then(|| module.to_owned()),
        filename: filename.to_owned(),
        abs_path: abs_path.to_owned(),
        lineno,
        context: (!line.is_empty()).then(|| {
            let pre = vec![
                String::new(),
                format!("    # {function}"),
                "    try:".to_owned(),
            ];
            let post = vec![
                "    except Exception:".to_owned(),
                "        raise".to_owned(),
            ];
            (pre, format!("    {line}"), post)
        }),
        in_app: false,
    }
}

fn frame_json(spec: &FrameSpec, lineno: u32) -> Value {
    let mut frame = Map::new();
    frame.insert("function".into(), spec.function.clone().into());
    if let Some(module) = &spec.module {
        frame.insert("module".into(), module.clone().into());
    }
    frame.insert("filename".into(), spec.filename.clone().into());
    frame.insert("abs_path".into(), spec.abs_path.clone().into());
    frame.insert("lineno".into(), lineno.into());
    frame.insert("in_app".into(), spec.in_app.into());
    if let Some((pre, line, post)) = &spec.context {
        frame.insert("pre_context".into(), json!(pre));
        frame.insert("context_line".into(), line.clone().into());
        frame.insert("post_context".into(), json!(post));
    }
    Value::Object(frame)
}

/// Produces the events of a run.
#[derive(Debug, Clone)]
pub struct Generator {
    mix: EventMix,
    seed: u64,
    run_id: String,
    issues: Vec<IssueDef>,
    issue_weights: WeightedIndex<f64>,
}

/// Fills `{n}`, `{hex}`, `{word}`, `{noun}`, `{Noun}`, `{amount}`, `{ms}`, `{status}`, `{state}`.
fn fill(template: &str, rng: &mut ChaCha8Rng) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        match name {
            "n" => out.push_str(&rng.random_range(1000..9_999_999u32).to_string()),
            "hex" => out.push_str(&format!("{:012x}", rng.random::<u64>() & 0xffff_ffff_ffff)),
            "word" => out.push_str(pick(rng, &WORDS)),
            "noun" => out.push_str(pick(rng, &NOUNS)),
            "Noun" => out.push_str(&capitalize(pick(rng, &NOUNS))),
            "amount" => out.push_str(&format!(
                "{}.{:02}",
                rng.random_range(1..5000),
                rng.random_range(0..100)
            )),
            "ms" => out.push_str(&rng.random_range(100..30_000u32).to_string()),
            "status" => out.push_str(&pick(rng, &[500, 502, 503, 404, 409]).to_string()),
            "state" => out.push_str(pick(rng, &STATES)),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

impl Generator {
    /// A generator for a mix and seed; `run_id` goes into every event's [`RUN_TAG`] tag.
    pub fn new(mix: &EventMix, seed: u64, run_id: &str) -> Self {
        let weights = mix.platforms;
        let platform_weights = [
            weights.python,
            weights.javascript,
            weights.java,
            weights.rust,
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_155e_0000_0000);
        // Smooth weighted round robin: any number of issues splits over the platforms as close to
        // the weights as possible (10 issues at 4:3:2:1 are exactly 4, 3, 2 and 1).
        let total: i64 = platform_weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = [0i64; 4];
        let issues = (0..mix.issues)
            .map(|k| {
                for (c, &w) in current.iter_mut().zip(&platform_weights) {
                    *c += i64::from(w);
                }
                let mut best = 0;
                for i in 1..current.len() {
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                rng.set_stream(u64::from(k));
                rng.set_word_pos(0);
                issue_def(k, mix, Platform::ALL[best], &mut rng)
            })
            .collect();
        let skew = mix.issue_skew;
        let issue_weights =
            WeightedIndex::new((0..mix.issues).map(|k| 1.0 / f64::from(k + 1).powf(skew)))
                .unwrap_or_else(|_| {
                    // Unreachable for a validated mix; fall back to a single issue.
                    WeightedIndex::new([1.0])
                        .unwrap_or_else(|_| unreachable!("one positive weight"))
                });
        Generator {
            mix: mix.clone(),
            seed,
            run_id: run_id.to_owned(),
            issues,
            issue_weights,
        }
    }

    /// The run id in every event's tags.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The issue of event `seq`: the first `issues` events visit every issue once, then issues
    /// are drawn with the skewed weights.
    pub fn issue_of(&self, seq: u64, rng: &mut ChaCha8Rng) -> u32 {
        if seq < u64::from(self.mix.issues) {
            seq as u32
        } else {
            self.issue_weights.sample(rng) as u32
        }
    }

    fn event_rng(&self, seq: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(seq);
        rng
    }

    /// The event JSON of event `seq` with this id and time (Unix seconds).
    pub fn event_json(&self, seq: u64, event_id: Uuid, timestamp: f64) -> (u32, Platform, Vec<u8>) {
        let mut rng = self.event_rng(seq);
        let issue = self.issue_of(seq, &mut rng);
        let def = &self.issues[issue as usize];
        let platform = def.platform;
        let (min, max) = (self.mix.size.min_bytes, self.mix.size.max_bytes);
        let target = if min == max {
            min
        } else {
            let u: f64 = rng.random();
            ((min as f64) * (max as f64 / min as f64).powf(u)).round() as usize
        }
        .clamp(min, max);

        let release_index = rng.random_range(0..self.mix.releases);
        let release = match platform {
            Platform::Python => format!("shop@3.{}.0", 10 + release_index),
            Platform::Javascript => format!("storefront@1.{}.2", 40 + release_index),
            Platform::Java => format!("shop-service@2.{}.1", 5 + release_index),
            Platform::Rust => format!("shop-api@0.{}.0", 20 + release_index),
        };
        // Frames: framework frames outside, the issue's app frames, the issue's inner frames.
        let fixed = def.in_app.len() + def.inner.len();
        let frames_total = rng.random_range(self.mix.frames.min..=self.mix.frames.max);
        let outer_count = frames_total.saturating_sub(fixed);
        let (base, repeat) = outer_frames(platform);
        let mut frames: Vec<Value> = Vec::with_capacity(frames_total);
        for i in 0..outer_count {
            let (module, function, filename, abs_path, line) = if i < base.len() {
                base[i]
            } else {
                pick(&mut rng, repeat)
            };
            let spec = system_spec(module, function, filename, abs_path, line, 0);
            let lineno = rng.random_range(20..900);
            frames.push(frame_json(&spec, lineno));
        }
        // Line numbers move with the release, as code changes between releases.
        let shift = release_index * 3;
        for spec in &def.in_app {
            frames.push(frame_json(spec, spec.lineno + shift));
        }
        for spec in &def.inner {
            frames.push(frame_json(spec, spec.lineno));
        }

        let mut event = self.skeleton(def, issue, &mut rng, event_id, timestamp, &release);
        // Trim framework frames (outermost first, down to frames.min), then context lines, until
        // the event fits its target size.
        let mut frame_sizes: Vec<usize> = frames.iter().map(|f| f.to_string().len()).collect();
        let base_len = serialized_len(&event);
        let frames_len =
            |sizes: &[usize]| sizes.iter().sum::<usize>() + sizes.len().saturating_sub(1);
        let mut total = base_len + frames_len(&frame_sizes);
        let min_frames = self.mix.frames.min.max(fixed);
        let mut removable = outer_count;
        while total > target && frames.len() > min_frames && removable > 0 {
            frames.remove(0);
            frame_sizes.remove(0);
            removable -= 1;
            total = base_len + frames_len(&frame_sizes);
        }
        if total > target {
            for (frame, size) in frames.iter_mut().zip(frame_sizes.iter_mut()) {
                if total <= target {
                    break;
                }
                if let Some(map) = frame.as_object_mut() {
                    map.remove("pre_context");
                    map.remove("post_context");
                }
                let new_size = frame.to_string().len();
                total -= *size - new_size;
                *size = new_size;
            }
        }
        event["exception"]["values"][0]["stacktrace"]["frames"] = Value::Array(frames);
        // Still too large: drop optional parts, least telling first.
        for (parent, key) in [
            ("", "logentry"),
            ("contexts", "trace"),
            ("request", "headers"),
        ] {
            if serialized_len(&event) <= target {
                break;
            }
            let holder = if parent.is_empty() {
                event.as_object_mut()
            } else {
                event.get_mut(parent).and_then(Value::as_object_mut)
            };
            if let Some(map) = holder {
                map.remove(key);
            }
        }

        // Breadcrumbs, then padding, up to the target size.
        let mut len = serialized_len(&event);
        let mut crumbs = Vec::new();
        let mut crumbs_len = 0;
        while crumbs.len() < 100 {
            let crumb = breadcrumb(
                platform,
                &mut rng,
                timestamp - 30.0 + crumbs.len() as f64 * 0.25,
            );
            let size = crumb.to_string().len() + usize::from(!crumbs.is_empty());
            // `"breadcrumbs":{"values":[]}` plus its comma once the first crumb is added.
            let overhead = if crumbs.is_empty() { 28 } else { 0 };
            if len + crumbs_len + size + overhead + 24 > target {
                break;
            }
            crumbs_len += size + overhead;
            crumbs.push(crumb);
        }
        if !crumbs.is_empty() {
            event["breadcrumbs"] = json!({ "values": crumbs });
            len = serialized_len(&event);
        }
        if len < target {
            // `extra.padding` is in every event (empty at first), so its length adds exactly.
            let mut pad = target - len;
            for _ in 0..3 {
                event["extra"]["padding"] = Value::String(padding(&mut rng, pad));
                let now = serialized_len(&event);
                if now == target {
                    break;
                }
                pad = (pad + target).saturating_sub(now);
            }
        }
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        (issue, platform, payload)
    }

    /// Event `seq` as a request body.
    pub fn generate(
        &self,
        seq: u64,
        event_id: Uuid,
        timestamp: f64,
        sent_at: &str,
    ) -> GeneratedEvent {
        let (issue, platform, payload) = self.event_json(seq, event_id, timestamp);
        let envelope = envelope::event_envelope(event_id, sent_at, &payload);
        let body = if self.mix.gzip {
            envelope::gzip(&envelope)
        } else {
            envelope
        };
        GeneratedEvent {
            seq,
            issue,
            platform,
            event_id,
            payload_len: payload.len(),
            gzip: self.mix.gzip,
            body,
        }
    }

    /// Generates event `seq` once, to be sent many times with fresh ids ([`Template::instantiate`]).
    pub fn template(&self, seq: u64, timestamp: f64, sent_at: &str) -> Template {
        // A placeholder id unlikely to occur anywhere else in the body.
        let marker = Uuid::from_u128(0x5eed_cafe_0000_0000_0000_0000_0000_0000 | u128::from(seq));
        let (issue, platform, payload) = self.event_json(seq, marker, timestamp);
        let body = envelope::event_envelope(marker, sent_at, &payload);
        let hex = marker.simple().to_string();
        let id_at = body
            .windows(hex.len())
            .enumerate()
            .filter(|(_, window)| *window == hex.as_bytes())
            .map(|(at, _)| at)
            .collect();
        Template {
            issue,
            platform,
            payload_len: payload.len(),
            gzip: self.mix.gzip,
            body,
            id_at,
        }
    }

    fn skeleton(
        &self,
        def: &IssueDef,
        issue: u32,
        rng: &mut ChaCha8Rng,
        event_id: Uuid,
        timestamp: f64,
        release: &str,
    ) -> Value {
        let platform = def.platform;
        let user = rng.random_range(1..20_000u32);
        let order = rng.random_range(100_000..9_999_999u32);
        let host = rng.random_range(1..24u32);
        let environment = if rng.random_bool(0.9) {
            "production"
        } else {
            "staging"
        };
        let value = fill(def.exception.template, rng);
        let (sdk, sdk_version, mechanism, runtime, level) = match platform {
            Platform::Python => (
                "sentry.python.django",
                "2.19.2",
                "django",
                json!({"name": "CPython", "version": "3.12.4"}),
                "error",
            ),
            Platform::Javascript => (
                "sentry.javascript.node",
                "8.40.0",
                "onuncaughtexception",
                json!({"name": "node", "version": "v20.11.1"}),
                "error",
            ),
            Platform::Java => (
                "sentry.java.spring-boot.jakarta",
                "7.18.0",
                "UncaughtExceptionHandler",
                json!({"name": "OpenJDK Runtime Environment", "version": "21.0.2"}),
                "error",
            ),
            Platform::Rust => (
                "sentry.rust",
                "0.34.0",
                "panic",
                json!({"name": "rustc", "version": "1.82.0"}),
                "fatal",
            ),
        };
        let mut exception = json!({
            "type": def.exception.ty,
            "value": value,
            "mechanism": { "type": mechanism, "handled": false },
            "stacktrace": { "frames": [] },
        });
        if let Some(module) = def.exception.module {
            exception["module"] = module.into();
        }
        let mut event = json!({
            "event_id": event_id.simple().to_string(),
            "timestamp": timestamp,
            "platform": platform.name(),
            "level": level,
            "logger": def.logger,
            "server_name": format!("web-{host}"),
            "release": release,
            "environment": environment,
            "transaction": def.transaction,
            "exception": { "values": [exception] },
            "tags": {
                RUN_TAG: self.run_id,
                ISSUE_TAG: issue.to_string(),
                "customer_tier": pick(rng, &["free", "team", "business", "enterprise"]),
                "region": pick(rng, &["eu-west-1", "us-east-1", "ap-southeast-2"]),
                "feature": pick(rng, &WORDS),
            },
            "user": {
                "id": user.to_string(),
                "username": format!("user{user}"),
                "email": format!("user{user}@example.com"),
                "ip_address": format!("10.{}.{}.{}", user % 200, (user / 200) % 250, 1 + user % 250),
            },
            "contexts": {
                "runtime": runtime,
                "os": { "name": "Linux", "version": "6.1.0" },
                "trace": {
                    "trace_id": format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
                    "span_id": format!("{:016x}", rng.random::<u64>()),
                    "op": "http.server",
                },
            },
            "sdk": { "name": sdk, "version": sdk_version },
            "extra": { "order_id": order, "attempt": rng.random_range(1..4u32), "padding": "" },
        });
        if platform != Platform::Java {
            let noun = pick(rng, &NOUNS);
            event["request"] = json!({
                "url": format!("https://shop.example.com/api/{noun}s/{order}/"),
                "method": pick(rng, &["GET", "POST", "PUT", "DELETE"]),
                "headers": {
                    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                    "Content-Type": "application/json",
                    "Accept-Language": "en-GB,en;q=0.9",
                },
            });
        }
        if rng.random_bool(0.3) {
            // A logging call's message with its parameters, as the logging integrations send it.
            let noun = pick(rng, &NOUNS);
            let id = rng.random_range(1000..99_999u32);
            let ms = rng.random_range(5..20_000u32);
            event["logentry"] = json!({
                "message": format!("failed to process {noun} %s after %s ms"),
                "params": [id, ms],
                "formatted": format!("failed to process {noun} {id} after {ms} ms"),
            });
        }
        event
    }
}

fn serialized_len(value: &Value) -> usize {
    value.to_string().len()
}

fn breadcrumb(platform: Platform, rng: &mut ChaCha8Rng, timestamp: f64) -> Value {
    let noun = pick(rng, &NOUNS);
    let n = rng.random_range(1000..999_999u32);
    match rng.random_range(0..4) {
        0 => json!({
            "type": "http",
            "category": match platform {
                Platform::Python => "httplib",
                Platform::Javascript => "http",
                Platform::Java => "okhttp",
                Platform::Rust => "reqwest",
            },
            "level": "info",
            "timestamp": timestamp,
            "data": {
                "method": pick(rng, &["GET", "POST"]),
                "url": format!("https://api.internal.example/v2/{noun}s/{n}"),
                "status_code": pick(rng, &[200, 200, 200, 201, 404, 500]),
            },
        }),
        1 => json!({
            "type": "default",
            "category": "query",
            "level": "info",
            "timestamp": timestamp,
            "message": format!("SELECT \"{noun}\".\"id\", \"{noun}\".\"status\", \"{noun}\".\"updated_at\" FROM \"{noun}\" WHERE \"{noun}\".\"id\" = %s LIMIT 21"),
            "data": { "db.params": [n] },
        }),
        2 => json!({
            "type": "default",
            "category": format!("shop.{noun}"),
            "level": pick(rng, &["info", "info", "warning"]),
            "timestamp": timestamp,
            "message": format!("{} {noun} {n} took {} ms", capitalize(pick(rng, &VERBS)), rng.random_range(1..3000u32)),
        }),
        _ => json!({
            "type": "navigation",
            "category": "navigation",
            "level": "info",
            "timestamp": timestamp,
            "data": { "from": format!("/{noun}s/{n}"), "to": format!("/{}/", pick(rng, &AREAS)) },
        }),
    }
}

/// Text that compresses like real payload data (words and numbers), `len` bytes of ASCII.
fn padding(rng: &mut ChaCha8Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        match rng.random_range(0..3) {
            0 => out.push_str(pick(rng, &WORDS)),
            1 => out.push_str(pick(rng, &NOUNS)),
            _ => out.push_str(&rng.random_range(0..1_000_000u32).to_string()),
        }
        out.push(' ');
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{CountRange, SizeRange};
    use std::collections::HashMap;
    use std::io::Read;

    fn mix(issues: u32) -> EventMix {
        EventMix {
            issues,
            ..EventMix::default()
        }
    }

    fn parse(payload: &[u8]) -> Value {
        serde_json::from_slice(payload).expect("event json")
    }

    /// The grouping-relevant part of the in-app frames.
    fn in_app_frames(event: &Value) -> Vec<(String, String, String, String)> {
        event["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .filter(|f| f["in_app"] == true)
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                (s("module"), s("filename"), s("function"), s("context_line"))
            })
            .collect()
    }

    #[test]
    fn templates_send_fresh_ids_everywhere_the_id_was() {
        let mix = EventMix::default();
        let g = Generator::new(&mix, 3, "run");
        let template = g.template(4, 1_700_000_000.5, "2026-01-01T00:00:00Z");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (first, second) = (template.instantiate(0, a), template.instantiate(1, b));
        for (event, id) in [(&first, a), (&second, b)] {
            let text = String::from_utf8(event.body.clone()).expect("utf-8");
            assert_eq!(
                text.matches(&id.simple().to_string()).count(),
                2,
                "header and event"
            );
            assert!(!text.contains("5eedcafe"));
        }
        assert_eq!(first.body.len(), second.body.len());
        assert_eq!(
            (first.issue, first.payload_len),
            (second.issue, second.payload_len)
        );
    }

    #[test]
    fn envelopes_parse_back_and_shrike_accepts_them() {
        let g = Generator::new(&mix(20), 7, "run1");
        for seq in 0..40 {
            let id = Uuid::new_v4();
            let generated = g.generate(seq, id, 1_700_000_000.5, "2026-01-01T00:00:00.000Z");
            assert!(!generated.gzip);
            let body = &generated.body;
            // By hand: header line, item header with type and length, payload, newline.
            let first_newline = body.iter().position(|&b| b == b'\n').expect("header line");
            let header: Value = serde_json::from_slice(&body[..first_newline]).expect("header");
            assert_eq!(header["event_id"], id.simple().to_string());
            let rest = &body[first_newline + 1..];
            let second_newline = rest.iter().position(|&b| b == b'\n').expect("item header");
            let item: Value = serde_json::from_slice(&rest[..second_newline]).expect("item");
            assert_eq!(item["type"], "event");
            let length = item["length"].as_u64().expect("length") as usize;
            assert_eq!(length, generated.payload_len);
            let payload = &rest[second_newline + 1..second_newline + 1 + length];
            assert_eq!(rest.len(), second_newline + 1 + length + 1);
            let event = parse(payload);
            assert_eq!(event["event_id"], id.simple().to_string());
            assert_eq!(event["platform"], generated.platform.name());
            assert_eq!(event["tags"][RUN_TAG], "run1");
            assert_eq!(event["tags"][ISSUE_TAG], generated.issue.to_string());
            // Through Shrike's own parser.
            let envelope =
                shrike_protocol::envelope::Envelope::parse(bytes::Bytes::from(body.clone()))
                    .expect("shrike parses the envelope");
            assert_eq!(envelope.header.event_id, Some(id));
            assert_eq!(envelope.items.len(), 1);
            assert_eq!(envelope.items[0].ty, "event");
            assert_eq!(&envelope.items[0].payload[..], payload);
            let parsed: shrike_protocol::event::Event =
                serde_json::from_slice(&envelope.items[0].payload).expect("shrike event");
            drop(parsed);
        }
    }

    #[test]
    fn events_look_like_their_platform() {
        let g = Generator::new(&mix(40), 3, "r");
        let mut seen = HashMap::new();
        for seq in 0..200 {
            let (_, platform, payload) = g.event_json(seq, Uuid::new_v4(), 1.0);
            let event = parse(&payload);
            *seen.entry(platform).or_insert(0) += 1;
            let frames = event["exception"]["values"][0]["stacktrace"]["frames"]
                .as_array()
                .expect("frames");
            let last_in_app = frames
                .iter()
                .rfind(|f| f["in_app"] == true)
                .expect("in-app");
            assert!(last_in_app["lineno"].as_u64().is_some());
            match platform {
                Platform::Python => {
                    assert!(
                        last_in_app["filename"]
                            .as_str()
                            .expect("f")
                            .ends_with(".py")
                    );
                    assert!(last_in_app["context_line"].is_string());
                    assert_eq!(event["sdk"]["name"], "sentry.python.django");
                }
                Platform::Javascript => {
                    assert!(
                        last_in_app["filename"]
                            .as_str()
                            .expect("f")
                            .ends_with(".js")
                    );
                }
                Platform::Java => {
                    assert!(
                        last_in_app["module"]
                            .as_str()
                            .expect("m")
                            .starts_with("com.example.")
                    );
                }
                Platform::Rust => {
                    assert!(
                        last_in_app["function"]
                            .as_str()
                            .expect("f")
                            .starts_with("shop_api::")
                    );
                }
            }
            assert!(event["user"]["id"].is_string());
            assert!(event["release"].is_string());
            assert!(event["exception"]["values"][0]["value"].is_string());
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[test]
    fn an_issue_keeps_its_type_and_in_app_frames_while_details_vary() {
        let g = Generator::new(&mix(5), 11, "r");
        let mut by_issue: HashMap<u32, Vec<Value>> = HashMap::new();
        for seq in 0..300 {
            let (issue, _, payload) = g.event_json(seq, Uuid::new_v4(), 1.0);
            by_issue.entry(issue).or_default().push(parse(&payload));
        }
        assert_eq!(by_issue.len(), 5);
        let mut signatures = Vec::new();
        for events in by_issue.values() {
            let first = &events[0];
            let ty = &first["exception"]["values"][0]["type"];
            let frames = in_app_frames(first);
            assert!(!frames.is_empty());
            let mut values = std::collections::HashSet::new();
            let mut lengths = std::collections::HashSet::new();
            for e in events {
                assert_eq!(&e["exception"]["values"][0]["type"], ty);
                assert_eq!(in_app_frames(e), frames);
                values.insert(e["exception"]["values"][0]["value"].to_string());
                lengths.insert(
                    e["exception"]["values"][0]["stacktrace"]["frames"]
                        .as_array()
                        .map(Vec::len),
                );
            }
            assert!(
                events.len() < 10 || lengths.len() > 1,
                "frame counts never vary"
            );
            signatures.push(frames);
            let _ = values;
        }
        signatures.sort();
        signatures.dedup();
        assert_eq!(signatures.len(), 5, "two issues share their in-app frames");
    }

    #[test]
    fn the_first_events_visit_every_issue_and_seeds_are_deterministic() {
        let g = Generator::new(&mix(30), 5, "r");
        let id = Uuid::nil();
        let issues: Vec<u32> = (0..30).map(|seq| g.event_json(seq, id, 1.0).0).collect();
        assert_eq!(issues, (0..30).collect::<Vec<_>>());
        let again = Generator::new(&mix(30), 5, "r");
        for seq in [0, 1, 29, 30, 31, 500] {
            assert_eq!(g.event_json(seq, id, 1.0), again.event_json(seq, id, 1.0));
        }
        let other = Generator::new(&mix(30), 6, "r");
        assert_ne!(g.event_json(40, id, 1.0), other.event_json(40, id, 1.0));
    }

    #[test]
    fn sizes_stay_within_bounds() {
        for (min, max, frames) in [
            (4096, 4096, CountRange { min: 5, max: 60 }),
            (4096, 8192, CountRange { min: 5, max: 60 }),
            (4096, 65536, CountRange { min: 5, max: 60 }),
            (100_000, 200_000, CountRange { min: 10, max: 20 }),
        ] {
            let m = EventMix {
                issues: 50,
                frames,
                size: SizeRange {
                    min_bytes: min,
                    max_bytes: max,
                },
                ..EventMix::default()
            };
            let g = Generator::new(&m, 9, "0123456789abcdef0123456789abcdef");
            let mut sizes = Vec::new();
            for seq in 0..300 {
                let (_, _, payload) = g.event_json(seq, Uuid::new_v4(), 1_700_000_000.123);
                assert!(
                    (min..=max).contains(&payload.len()),
                    "{} not in [{min}, {max}]",
                    payload.len()
                );
                let event = parse(&payload);
                let n = event["exception"]["values"][0]["stacktrace"]["frames"]
                    .as_array()
                    .expect("frames")
                    .len();
                assert!(n >= frames.min && n <= frames.max, "{n} frames");
                sizes.push(payload.len());
            }
            if min < max {
                let small = sizes.iter().filter(|&&s| s < (min + max) / 2).count();
                assert!(small > 30 && small < 290, "sizes not spread: {small} small");
            }
        }
    }

    #[test]
    fn issues_split_over_platforms_by_weight() {
        let g = Generator::new(&mix(10), 1, "r");
        let mut counts = HashMap::new();
        for issue in &g.issues {
            *counts.entry(issue.platform).or_insert(0) += 1;
        }
        assert_eq!(counts[&Platform::Python], 4);
        assert_eq!(counts[&Platform::Javascript], 3);
        assert_eq!(counts[&Platform::Java], 2);
        assert_eq!(counts[&Platform::Rust], 1);
        let only_rust = EventMix {
            platforms: crate::scenario::PlatformWeights {
                python: 0,
                javascript: 0,
                java: 0,
                rust: 1,
            },
            ..mix(5)
        };
        let g = Generator::new(&only_rust, 1, "r");
        assert!(g.issues.iter().all(|i| i.platform == Platform::Rust));
    }

    #[test]
    fn gzip_bodies_round_trip() {
        let m = EventMix {
            gzip: true,
            ..mix(3)
        };
        let g = Generator::new(&m, 1, "r");
        let generated = g.generate(0, Uuid::new_v4(), 1.0, "2026-01-01T00:00:00Z");
        assert!(generated.gzip);
        let mut body = Vec::new();
        flate2::read::GzDecoder::new(&generated.body[..])
            .read_to_end(&mut body)
            .expect("gunzip");
        assert!(generated.body.len() < body.len());
        let envelope =
            shrike_protocol::envelope::Envelope::parse(bytes::Bytes::from(body)).expect("envelope");
        assert_eq!(envelope.items[0].payload.len(), generated.payload_len);
    }
}
