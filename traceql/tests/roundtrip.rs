//! Printing any syntax tree and parsing the text gives the same tree back.

mod strategies;

use proptest::prelude::*;
use skein_traceql::{AttrScope, Field, Kind, Query, Status, Value, parse};

fn vocabulary() -> strategies::Vocabulary {
    strategies::Vocabulary {
        attributes: vec![
            (Some(AttrScope::Span), "http.status_code".into()),
            (None, "x".into()),
        ],
        strings: vec!["a".into()],
        patterns: vec![".*", r"a\.b", "x\"y", r"\d+|[a-z]{2,3}", "(?i)get"],
        wild: true,
        pairs: vec![
            (Field::Name, vec![Value::String("GET /".into())]),
            (Field::Status, vec![Value::Status(Status::Error)]),
            (Field::Kind, vec![Value::Kind(Kind::Client)]),
            (
                Field::Duration,
                vec![Value::Duration(1_500_000_000), Value::Int(-3)],
            ),
            (Field::SpanId, vec![Value::String("0a".into())]),
            (
                Field::Attribute {
                    scope: Some(AttrScope::Link),
                    key: "a b".into(),
                },
                vec![Value::Float(-0.5), Value::Bool(true)],
            ),
        ],
        depth: 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn display_parses_back(pipeline in vocabulary().pipeline()) {
        let query = Query { pipeline };
        let text = query.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&parsed, &query, "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }
}
