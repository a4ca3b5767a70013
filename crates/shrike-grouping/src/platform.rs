//! Platforms as grouping sees them.

/// The behaviour family of a platform, as Sentry's stack-trace rules see it.
pub fn family(platform: &str) -> &'static str {
    match platform {
        "objc" | "cocoa" | "swift" | "native" | "c" => "native",
        "javascript" | "node" => "javascript",
        _ => "other",
    }
}
