//! Every query in `docs/traceql.md` parses (or, in the "Not supported" section, is rejected
//! as unsupported), and prints back to a query that parses to the same tree.

use skein_traceql::{Error, parse};

fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with("## ") {
            section = line.to_owned();
        }
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => out.push((section.clone(), block)),
                None => current = Some(String::new()),
            }
            continue;
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

#[test]
fn documented_queries_parse() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/traceql.md");
    let doc = std::fs::read_to_string(path).expect("docs/traceql.md");
    let mut checked = 0;
    for (section, block) in blocks(&doc) {
        if block.starts_with("parse error") {
            continue;
        }
        // One query per line, unless the block is one query spread over lines.
        let queries: Vec<String> = if block.starts_with("{\n") {
            vec![block.clone()]
        } else {
            block
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        };
        for q in queries {
            checked += 1;
            match parse(&q) {
                Ok(parsed) => {
                    assert_eq!(parse(&parsed.to_string()).as_ref(), Ok(&parsed), "{q}");
                }
                Err(Error::Unsupported { .. }) if section.contains("Not supported") => {}
                Err(e) => panic!("{section}: {q}: {e}"),
            }
        }
    }
    assert!(checked > 45, "only {checked} examples found");
}
