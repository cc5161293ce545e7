//! JUnit XML, in the subset Jenkins, GitLab and the common GitHub Actions reporters
//! all read: flat `<testsuite>`s with a name, `<testcase classname name time>`, at most
//! one `<failure>`/`<error>`/`<skipped>` per case, message in both attribute and text.

use quick_xml::escape::escape;

/// A test case.
#[derive(Debug, Clone)]
pub struct JCase {
    /// Group (file, bundle).
    pub classname: String,
    /// Case name (unique within the class).
    pub name: String,
    /// Seconds.
    pub time: f64,
    /// Outcome.
    pub outcome: JOutcome,
}

/// Outcome of a case.
#[derive(Debug, Clone)]
pub enum JOutcome {
    /// Passed.
    Pass,
    /// An assertion failed: (short message, details).
    Failure(String, String),
    /// The case could not run.
    Error(String, String),
    /// Skipped, with the reason.
    Skipped(String),
}

/// A test suite.
#[derive(Debug, Clone)]
pub struct JSuite {
    /// Suite name.
    pub name: String,
    /// Cases.
    pub cases: Vec<JCase>,
}

/// Renders suites as a JUnit XML document.
pub fn render(suites: &[JSuite]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = |s: &JSuite, f: fn(&JOutcome) -> bool| s.cases.iter().filter(|c| f(&c.outcome)).count();
    let failures = |o: &JOutcome| matches!(o, JOutcome::Failure(..));
    let errors = |o: &JOutcome| matches!(o, JOutcome::Error(..));
    let skipped = |o: &JOutcome| matches!(o, JOutcome::Skipped(..));
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let total_time: f64 = suites.iter().flat_map(|s| &s.cases).map(|c| c.time).sum();
    out.push_str(&format!(
        "<testsuites name=\"palisade\" tests=\"{total}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total_time:.6}\">\n",
        suites.iter().map(|s| count(s, failures)).sum::<usize>(),
        suites.iter().map(|s| count(s, errors)).sum::<usize>(),
        suites.iter().map(|s| count(s, skipped)).sum::<usize>(),
    ));
    for s in suites {
        let time: f64 = s.cases.iter().map(|c| c.time).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.6}\">\n",
            escape(&s.name),
            s.cases.len(),
            count(s, failures),
            count(s, errors),
            count(s, skipped)
        ));
        for c in &s.cases {
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6}\"",
                escape(&c.classname),
                escape(&c.name),
                c.time
            );
            match &c.outcome {
                JOutcome::Pass => out.push_str(&format!("{head}/>\n")),
                JOutcome::Failure(m, text) => out.push_str(&format!(
                    "{head}>\n      <failure message=\"{}\" type=\"failure\">{}</failure>\n    </testcase>\n",
                    escape(m),
                    escape(text)
                )),
                JOutcome::Error(m, text) => out.push_str(&format!(
                    "{head}>\n      <error message=\"{}\" type=\"error\">{}</error>\n    </testcase>\n",
                    escape(m),
                    escape(text)
                )),
                JOutcome::Skipped(m) => {
                    out.push_str(&format!("{head}>\n      <skipped message=\"{}\"/>\n    </testcase>\n", escape(m)))
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let xml = render(&[JSuite {
            name: "b".into(),
            cases: vec![
                JCase { classname: "c".into(), name: "a<b".into(), time: 0.5, outcome: JOutcome::Pass },
                JCase {
                    classname: "c".into(),
                    name: "x".into(),
                    time: 0.0,
                    outcome: JOutcome::Failure("m&".into(), "t".into()),
                },
            ],
        }]);
        assert!(xml.contains("name=\"a&lt;b\""), "{xml}");
        assert!(xml.contains("<failure message=\"m&amp;\" type=\"failure\">t</failure>"), "{xml}");
        assert!(xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{xml}");
        // Well-formed: parses back.
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("malformed XML: {e}"),
            }
        }
    }
}
