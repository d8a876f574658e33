//! How ingested metrics are named in the exposition: a counter's family is its name
//! without `_total`; a family occupies several sample names (`_bucket`, `_sum`, ...), and a
//! new metric must not take one that another holds; label text is escaped once per series.

use crate::sample::Kind;

/// Escapes a label value for the exposition formats: `\`, `"` and newlines.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `a="x",b="y"`: a series' labels as the exposition writes them, without braces.
pub fn exposed_labels(labels: &[(Box<str>, Box<str>)]) -> Box<str> {
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(value, &mut out);
        out.push('"');
    }
    out.into()
}

/// The family key of a metric name: counters are exposed as `<key>_total`.
pub fn family_key(name: &str, kind: Kind) -> &str {
    match kind {
        Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// The names a family's series and metadata occupy in the exposition.
fn exposed_names(key: &str, kind: Kind) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        Kind::Counter => &["", "_total", "_created"],
        Kind::Gauge => &[""],
        Kind::Histogram => &["", "_bucket", "_sum", "_count", "_created"],
    };
    suffixes.iter().map(|s| format!("{key}{s}")).collect()
}

/// The families that would occupy `name` in the exposition: (key, kind it must have).
fn possible_owners(name: &str) -> impl Iterator<Item = (&str, Option<Kind>)> {
    let counter = ["_total", "_created"]
        .into_iter()
        .filter_map(move |s| name.strip_suffix(s))
        .map(|key| (key, Some(Kind::Counter)));
    let histogram = ["_bucket", "_sum", "_count", "_created"]
        .into_iter()
        .filter_map(move |s| name.strip_suffix(s))
        .map(|key| (key, Some(Kind::Histogram)));
    std::iter::once((name, None))
        .chain(counter)
        .chain(histogram)
}

/// The metric a new family `key` would collide with in the exposition, if any. `kind_of`
/// answers for families that exist (or are about to).
pub fn collision(
    key: &str,
    kind: Kind,
    kind_of: impl Fn(&str) -> Option<(Kind, String)>,
) -> Option<String> {
    for name in exposed_names(key, kind) {
        for (owner, owner_kind) in possible_owners(&name) {
            if owner == key {
                continue;
            }
            if let Some((existing, existing_name)) = kind_of(owner) {
                if owner_kind.is_none_or(|k| k == existing) {
                    return Some(format!(
                        "its exposed name {name:?} is taken by the {} {existing_name:?}",
                        existing.as_str()
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_keyed_without_total_and_other_kinds_as_named() {
        assert_eq!(family_key("req_total", Kind::Counter), "req");
        assert_eq!(family_key("req", Kind::Counter), "req");
        assert_eq!(family_key("req_total", Kind::Gauge), "req_total");
    }

    #[test]
    fn a_new_family_may_not_take_a_name_another_exposes() {
        let existing = |key: &str| match key {
            "req" => Some((Kind::Counter, "req".to_string())),
            "lat" => Some((Kind::Histogram, "lat".to_string())),
            _ => None,
        };
        for (key, kind) in [
            ("req_total", Kind::Gauge),
            ("req_created", Kind::Gauge),
            ("lat_bucket", Kind::Gauge),
            ("lat_sum", Kind::Counter),
        ] {
            assert!(collision(key, kind, existing).is_some(), "{key}");
        }
        // Names of their own collide with nothing.
        assert!(collision("x", Kind::Histogram, existing).is_none());
        assert!(collision("other_total", Kind::Gauge, existing).is_none());
    }

    #[test]
    fn label_text_is_escaped() {
        let labels: Vec<(Box<str>, Box<str>)> =
            vec![("a".into(), "x\"y\\z\nw".into()), ("b".into(), "2".into())];
        assert_eq!(exposed_labels(&labels).as_ref(), r#"a="x\"y\\z\nw",b="2""#);
    }
}
