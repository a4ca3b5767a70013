//! Alert emails: one message per project per run, listing each new, regressed or recurring issue
//! with its counts, as plain text and HTML, without links (Shrike has no web UI to link to yet).

use shrike_store::IssueActivity;

/// A rendered alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEmail {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Renders the alert for `project` about `issues` (non-empty) seen in a window.
pub fn render(project: &str, issues: &[IssueActivity], window: &str) -> AlertEmail {
    let new = issues.iter().filter(|i| i.is_new).count();
    let regressed = issues
        .iter()
        .filter(|i| !i.is_new && i.is_regression)
        .count();
    let events: u64 = issues.iter().map(|i| i.events_in_window).sum();
    let regressions = if regressed > 0 {
        format!(", {regressed} regressed")
    } else {
        String::new()
    };
    let subject = format!(
        "[Shrike] {project}: {events} error event{} in {} issue{} ({new} new{regressions})",
        plural(events as usize),
        issues.len(),
        plural(issues.len())
    );
    let mut text = format!("Errors in project {project} {window}:\n\n");
    let mut rows = String::new();
    for issue in issues {
        let kind = if issue.is_new {
            "NEW"
        } else if issue.is_regression {
            "REGRESSION"
        } else {
            "RECURRING"
        };
        text.push_str(&format!(
            "[{kind}] {}\n    {} event{} since the last check, {} in total{}\n    issue {}\n\n",
            issue.title,
            issue.events_in_window,
            plural(issue.events_in_window as usize),
            issue.times_seen,
            if issue.culprit.is_empty() {
                String::new()
            } else {
                format!(", in {}", issue.culprit)
            },
            issue.issue_id,
        ));
        rows.push_str(&format!(
            "<tr><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&issue.title),
            escape(&issue.culprit),
            issue.events_in_window,
            issue.times_seen,
            issue.issue_id
        ));
    }
    text.push_str("Run `shrike issues list` for every issue of the project.\n");
    let html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>Errors in project <b>{}</b> {}:</p>\n<table border=\"1\" cellpadding=\"4\">\n\
         <tr><th>Status</th><th>Issue</th><th>Culprit</th><th>Events since last check</th><th>Total</th><th>Id</th></tr>\n\
         {rows}</table>\n</body></html>\n",
        escape(project),
        escape(window)
    );
    AlertEmail {
        subject,
        text,
        html,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: u64, title: &str, new: bool, window: u64, total: u64) -> IssueActivity {
        IssueActivity {
            issue_id: id,
            events_in_window: window,
            times_seen: total,
            is_new: new,
            is_regression: false,
            status: Default::default(),
            title: title.into(),
            culprit: "/boom/".into(),
        }
    }

    #[test]
    fn lists_every_issue_with_counts() {
        let mail = render(
            "default",
            &[
                issue(1, "ZeroDivisionError: division by zero", true, 2, 2),
                issue(2, "KeyError: <'a'>", false, 1, 5),
            ],
            "since 10:00 UTC",
        );
        assert_eq!(
            mail.subject,
            "[Shrike] default: 3 error events in 2 issues (1 new)"
        );
        assert!(mail.text.contains("[NEW] ZeroDivisionError: division by zero\n    2 events since the last check, 2 in total, in /boom/"));
        assert!(
            mail.text.contains(
                "[RECURRING] KeyError: <'a'>\n    1 event since the last check, 5 in total"
            )
        );
        assert!(mail.html.contains("<td>KeyError: &lt;'a'&gt;</td>"));
        let mut regressed = issue(3, "ValueError", false, 1, 9);
        regressed.is_regression = true;
        let mail = render("default", &[regressed], "since 10:00 UTC");
        assert!(mail.subject.ends_with("(0 new, 1 regressed)"));
        assert!(mail.text.contains("[REGRESSION] ValueError"));
        assert!(!mail.html.contains("href"));
    }
}
