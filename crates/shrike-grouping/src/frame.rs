//! One stack frame's grouping component: module or file name, function, and the source line
//! where the platform's source is trustworthy, each cleaned of values that change between builds.
//!
//! The rules follow Sentry's `frame` strategy of grouping config `newstyle:2023-01-11`
//! (`src/sentry/grouping/strategies/newstyle.py`): file names are lowercased base names and
//! ignored for URLs; Java generated class names lose their generated suffixes; JavaScript function
//! names lose their `Object.` prefixes, and unknown or `eval` frames are ignored.

use crate::component::Component;
use regex::Regex;
use shrike_protocol::event::Frame;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Platforms whose context lines are used for grouping (source is reliably available).
const CONTEXT_LINE_PLATFORMS: &[&str] = &["javascript", "node", "python", "php", "ruby"];

/// Longest context line that still groups; longer ones are usually minified code.
const MAX_CONTEXT_LINE: usize = 120;

/// Whether a path is a URL the browser loaded, rather than a file of the application.
/// `file:` URLs count only when `allow_file_origin` is false.
pub fn has_url_origin(path: Option<&str>, allow_file_origin: bool) -> bool {
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return false;
    };
    if path.starts_with("file:") {
        return !allow_file_origin;
    }
    ["http:", "https:", "applewebdata:", "blob:"]
        .iter()
        .any(|scheme| path.starts_with(scheme))
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

// Java code generators append counters and hashes to class names; the prefix up to the marker is
// kept and the rest becomes `<auto>` so that two builds of one class group together.
static DOLLARS: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"$$"));
static REFLECT_MARKER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"sun.reflect.Generated"));
static JAVA_REFLECT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(sun\.reflect\.Generated(?:Serialization)?ConstructorAccessor)\d+"));
static JAVA_ASSIST: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?"));
static JAVA_HIBERNATE: LazyLock<Regex> = LazyLock::new(|| regex(r"(\$HibernateProxy\$)[\w_]+"));
static CLOJURE_FN: LazyLock<Regex> = LazyLock::new(|| regex(r"(\$fn__)\d+"));
static RUBY_ERB: LazyLock<Regex> = LazyLock::new(|| regex(r"__\d{4,}_\d{4,}$"));

/// Everything about the event a frame component needs.
#[derive(Debug, Clone, Copy)]
pub struct FrameContext<'a> {
    /// The event's platform, used when the frame has none.
    pub event_platform: &'a str,
    /// Whether the frame repeats the previous one (recursion).
    pub is_recursion: bool,
}

/// Builds the component of one frame.
pub fn frame_component(frame: &Frame, ctx: FrameContext<'_>) -> Component {
    let platform = frame
        .platform
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(ctx.event_platform);
    let family = crate::platform::family(platform);
    let abs_path = frame.abs_path.as_deref();

    let mut filename = filename_component(abs_path, frame.filename.as_deref(), platform);
    let module = module_component(abs_path, frame.module.as_deref(), platform);
    if module.contributes && filename.contributes {
        filename.exclude("module takes precedence");
    }
    let context_line = CONTEXT_LINE_PLATFORMS
        .contains(&platform)
        .then(|| context_line_component(frame, family));
    let sourcemap_used = frame.data.as_ref().is_some_and(|d| d.sourcemap.is_some());
    let function = function_component(
        frame,
        platform,
        family,
        sourcemap_used && context_line.as_ref().is_some_and(|c| c.contributes),
    );

    let mut children = Vec::with_capacity(4);
    children.extend([module, filename, function]);
    children.extend(context_line);
    let mut component = Component::node("frame", children);

    if family == "javascript" {
        // Browsers disagree about anonymous and native frames; ignoring them consistently makes
        // the same error group the same way in every browser.
        let name = frame
            .raw_function
            .as_deref()
            .or(frame.function.as_deref())
            .map(|f| f.rsplit('.').next().unwrap_or(f))
            .unwrap_or("");
        let function = &mut component.children_mut()[2];
        if name.is_empty() {
            function.contributes = false;
        } else if matches!(
            name,
            "?" | "<anonymous function>" | "<anonymous>" | "Anonymous function"
        ) || name.ends_with("/<")
        {
            function.exclude("ignored unknown function name");
        }
        if name == "eval"
            || matches!(
                abs_path,
                Some("[native code]" | "native code" | "eval code" | "<anonymous>")
            )
        {
            component.exclude("ignored low quality javascript frame");
        }
    }
    if ctx.is_recursion {
        component.exclude("ignored due to recursion");
    }
    component
}

fn filename_component(abs_path: Option<&str>, filename: Option<&str>, platform: &str) -> Component {
    let Some(filename) = filename else {
        return Component::empty("filename");
    };
    let base = lowercase(filename.rsplit(['/', '\\']).next().unwrap_or(filename));
    let hint = if has_url_origin(abs_path, true) {
        Some("ignored because frame points to a URL")
    } else if base == "<anonymous>" {
        Some("anonymous filename discarded")
    } else if base == "[native code]" {
        Some("native code indicated by filename")
    } else {
        None
    };
    if hint.is_none() && platform == "java" && base.contains('$') && base.contains("$$_javassist") {
        let cleaned = auto_suffix(&base, &JAVA_ASSIST, &|_| "$$_javassist".len());
        if cleaned != base {
            let mut component = Component::value("filename", cleaned);
            component.note("cleaned javassist parts");
            return component;
        }
    }
    let mut component = Component::value("filename", base);
    if let Some(hint) = hint {
        component.exclude(hint);
    }
    component
}

fn module_component(abs_path: Option<&str>, module: Option<&str>, platform: &str) -> Component {
    let Some(module) = module else {
        return Component::empty("module");
    };
    let mut component = Component::value("module", module.to_owned());
    if platform == "javascript"
        && module.contains('/')
        && abs_path.is_some_and(|p| p.ends_with(module))
    {
        component.exclude("ignored bad javascript module");
    } else if platform == "java" {
        let has_dollar = module.contains('$');
        if has_dollar && module.contains("$$Lambda$") {
            component.exclude("ignored java lambda");
        }
        for marker in [
            "sun.reflect.GeneratedMethodAccessor",
            "jdk.internal.reflect.GeneratedMethodAccessor",
        ] {
            if module.starts_with(marker) {
                let contributes = component.contributes;
                component.replace(vec![marker.to_owned()], "removed reflection marker");
                component.contributes = contributes;
                return component;
            }
        }
        // Every generated marker but the reflection one contains `$`; most modules have neither.
        // Matches are found without capture groups (much faster) and the kept prefix of each is
        // measured from the match itself.
        let mut cleaned = if REFLECT_MARKER.find(module.as_bytes()).is_some() {
            auto_suffix(module, &JAVA_REFLECT, &|m: &str| {
                m.trim_end_matches(|c: char| c.is_ascii_digit()).len()
            })
        } else {
            module.to_owned()
        };
        if cleaned.contains('$') {
            // CGLIB and Guice proxies (`$$EnhancerBySpringCGLIB$$1ebdddb0`): scanned by hand, a
            // regex per frame costs more than the rest of the frame.
            if cleaned.contains("CGLIB$$") {
                cleaned = auto_hash_suffix(&cleaned, &|w| w.len() > 5 && w.ends_with("CGLIB"));
            }
            if cleaned.contains("$$EnhancerBy") || cleaned.contains("$$FastClassBy") {
                cleaned = auto_hash_suffix(&cleaned, &|w| {
                    (w.len() > 10 && w.starts_with("EnhancerBy"))
                        || (w.len() > 11 && w.starts_with("FastClassBy"))
                });
            }
            let steps: [(&str, &Regex, &KeepPrefix); 3] = [
                ("$$_javassist", &JAVA_ASSIST, &|_| "$$_javassist".len()),
                ("$fn__", &CLOJURE_FN, &|_| "$fn__".len()),
                ("$HibernateProxy$", &JAVA_HIBERNATE, &|_| {
                    "$HibernateProxy$".len()
                }),
            ];
            for (marker, pattern, keep) in steps {
                if cleaned.contains(marker) {
                    cleaned = auto_suffix(&cleaned, pattern, keep);
                }
            }
        }
        if cleaned != module {
            let contributes = component.contributes;
            component.replace(vec![cleaned], "removed codegen marker");
            component.contributes = contributes;
        }
    }
    component
}

fn function_component(
    frame: &Frame,
    platform: &str,
    family: &str,
    sourcemap_with_context_line: bool,
) -> Component {
    let function = frame.function.as_deref().filter(|f| !f.is_empty());
    let raw = frame.raw_function.as_deref().filter(|f| !f.is_empty());
    // C# SDKs trimmed names late, so the raw name is the stable one there.
    let name: Cow<'_, str> = if platform == "csharp" {
        match raw.or(function) {
            Some(f) => Cow::Borrowed(f),
            None => return Component::empty("function"),
        }
    } else {
        match (function, raw) {
            (Some(f), None) => crate::functions::trim_function_name(f, platform),
            (Some(f), Some(_)) => Cow::Borrowed(f),
            (None, Some(r)) => Cow::Borrowed(r),
            (None, None) => return Component::empty("function"),
        }
    };
    let name: &str = &name;
    // JavaScript names are usually trimmed (`Object.foo` → `foo`): store the final value once.
    if family == "javascript"
        && let Some((_, last)) = name.rsplit_once('.')
    {
        let mut component = Component::value("function", last.to_owned());
        component.note("trimmed javascript function");
        if sourcemap_with_context_line {
            component.exclude("ignored because sourcemap used and context line available");
        }
        return component;
    }
    let mut component = Component::value("function", name.to_owned());
    match platform {
        "ruby" => {
            if name.starts_with("block ") {
                component.replace(vec!["block".into()], "ruby block");
            } else {
                let cleaned = RUBY_ERB.replace(name, "");
                if cleaned != name {
                    component.replace(
                        vec![cleaned.into_owned()],
                        "removed generated erb template suffix",
                    );
                }
            }
        }
        "php" => {
            if name.starts_with("[Anonymous") || name.starts_with("class@anonymous\0") {
                component.exclude("ignored anonymous function");
            }
            if name.starts_with("class@anonymous")
                && let Some((_, method)) = name.rsplit_once("::")
            {
                let contributes = component.contributes;
                component.replace(vec![method.to_owned()], "anonymous class method");
                component.contributes = contributes;
            }
        }
        "java" if name.starts_with("lambda$") => component.exclude("ignored lambda function"),
        "java" => {}
        _ if family == "native" && (name == "<redacted>" || name == "<unknown>") => {
            component.exclude("ignored unknown function")
        }
        _ if family == "native" => {}
        _ if family == "javascript" && sourcemap_with_context_line => {
            component.exclude("ignored because sourcemap used and context line available")
        }
        _ => {}
    }
    component
}

fn context_line_component(frame: &Frame, family: &str) -> Component {
    let raw = frame.context_line.as_deref().unwrap_or("");
    // Python's str.expandtabs(2) then split/join: runs of whitespace become one space. Most
    // lines only need their indentation trimmed.
    let trimmed = raw.trim();
    // Irregular: whitespace other than single spaces (tabs, runs of spaces, Unicode spaces).
    let irregular = if trimmed.is_ascii() {
        let bytes = trimmed.as_bytes();
        bytes.iter().enumerate().any(|(i, b)| {
            b.is_ascii_whitespace() && (*b != b' ' || bytes.get(i + 1) == Some(&b' '))
        })
    } else {
        trimmed.contains("  ") || trimmed.chars().any(|c| c.is_whitespace() && c != ' ')
    };
    let line = if irregular {
        trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        trimmed.to_owned()
    };
    if line.is_empty() {
        return Component::empty("context-line");
    }
    let mut component = Component::value("context-line", line);
    // Byte length bounds the character count, so most lines skip the count.
    if raw.len() > MAX_CONTEXT_LINE && raw.chars().count() > MAX_CONTEXT_LINE {
        component.exclude("discarded because line too long");
    } else if family == "javascript"
        && frame.function.is_none()
        && has_url_origin(frame.abs_path.as_deref(), false)
    {
        component.exclude("discarded because from URL origin and no function");
    }
    component
}

/// Replaces the hex hash in `$$<word>$$<hex>[_<digits>]` with `<auto>` wherever `word_ok(word)`
/// holds (the shape of Sentry's CGLIB and `EnhancerBy`/`FastClassBy` patterns).
fn auto_hash_suffix(text: &str, word_ok: &dyn Fn(&str) -> bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut last, mut at) = (0, 0);
    while let Some(offset) = DOLLARS.find(&bytes[at..]) {
        let start = at + offset + 2;
        let word_len = text[start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len() - start);
        let word_end = start + word_len;
        if word_ok(&text[start..word_end]) && text[word_end..].starts_with("$$") {
            let hex_start = word_end + 2;
            let hex = bytes[hex_start..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if hex > 0 {
                let mut end = hex_start + hex;
                if bytes.get(end) == Some(&b'_') {
                    let digits = bytes[end + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    if digits > 0 {
                        end += 1 + digits;
                    }
                }
                out.push_str(&text[last..hex_start]);
                out.push_str("<auto>");
                last = end;
                at = end;
                continue;
            }
        }
        at += offset + 1;
    }
    out.push_str(&text[last..]);
    out
}

/// How many bytes of a match to keep.
type KeepPrefix = dyn Fn(&str) -> usize;

/// Replaces the generated part of every match of `pattern` with `<auto>`, keeping the first
/// `keep(match)` bytes of the match.
fn auto_suffix(text: &str, pattern: &Regex, keep: &KeepPrefix) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in pattern.find_iter(text) {
        let kept = keep(m.as_str()).min(m.len());
        out.push_str(&text[last..m.start() + kept]);
        out.push_str("<auto>");
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}

/// Lowercases, without Unicode tables when the text is ASCII (file names nearly always are).
pub fn lowercase(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

/// Whether `frame` repeats `previous` exactly (same location and function): a recursive call.
pub fn is_recursion(frame: &Frame, previous: Option<&Frame>) -> bool {
    previous.is_some_and(|p| {
        p.abs_path == frame.abs_path
            && p.package == frame.package
            && p.module == frame.module
            && p.filename == frame.filename
            && p.function == frame.function
            && p.lineno == frame.lineno
            && p.colno == frame.colno
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(platform: &str) -> FrameContext<'_> {
        FrameContext {
            event_platform: platform,
            is_recursion: false,
        }
    }

    fn values(frame: &Frame, platform: &str) -> Vec<String> {
        frame_component(frame, ctx(platform))
            .contributing_values()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn java_generated_names_lose_their_suffixes() {
        let frame = |module: &str| Frame {
            module: Some(module.into()),
            function: Some("run".into()),
            ..Default::default()
        };
        assert_eq!(
            values(
                &frame("a.B$$EnhancerByGuice$$ae46b1bf$$FastClassByGuice$$caceacd2"),
                "java"
            ),
            [
                "a.B$$EnhancerByGuice$$<auto>$$FastClassByGuice$$<auto>",
                "run"
            ]
        );
        assert_eq!(
            values(&frame("a.User$HibernateProxy$oRWxjAWT"), "java")[0],
            "a.User$HibernateProxy$<auto>"
        );
        assert_eq!(
            values(&frame("sun.reflect.GeneratedMethodAccessor12"), "java")[0],
            "sun.reflect.GeneratedMethodAccessor"
        );
        assert_eq!(
            values(&frame("my.core$_main$fn__1539"), "java")[0],
            "my.core$_main$fn__<auto>"
        );
    }

    #[test]
    fn javascript_frames_are_fuzzed() {
        let frame = Frame {
            filename: Some("https://example.com/App.JS".into()),
            abs_path: Some("https://example.com/App.JS".into()),
            function: Some("Object.render".into()),
            ..Default::default()
        };
        assert_eq!(values(&frame, "javascript"), ["render"]);
        let anonymous = Frame {
            filename: Some("app.js".into()),
            function: Some("<anonymous>".into()),
            ..Default::default()
        };
        assert_eq!(values(&anonymous, "javascript"), ["app.js"]);
        let eval = Frame {
            filename: Some("app.js".into()),
            function: Some("eval".into()),
            ..Default::default()
        };
        assert!(!frame_component(&eval, ctx("javascript")).contributes);
    }

    #[test]
    fn python_uses_context_lines_and_module_over_filename() {
        let frame = Frame {
            module: Some("app.views".into()),
            filename: Some("app/views.py".into()),
            function: Some("boom".into()),
            context_line: Some("    return  1 / 0".into()),
            ..Default::default()
        };
        assert_eq!(
            values(&frame, "python"),
            ["app.views", "boom", "return 1 / 0"]
        );
        assert_eq!(values(&frame, "go"), ["app.views", "boom"]);
    }

    #[test]
    fn ruby_erb_suffixes_and_blocks() {
        let frame = Frame {
            filename: Some("foo.html.erb".into()),
            function: Some("_foo_html_erb__3327151541118998292_70361296749460".into()),
            ..Default::default()
        };
        assert_eq!(values(&frame, "ruby"), ["foo.html.erb", "_foo_html_erb"]);
    }
}
