//! Masking of secrets in what a service prints, such as its effective configuration.

/// The URL with its password (and `pass`/`password` query values) replaced by `****`.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|&(_, c)| c == '/' || c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            // `redis://secret@host`: some clients read a lone userinfo as the password.
            None => format!("****@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if matches!(name, "pass" | "password") => {
                        format!("{name}=****")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    if scheme.is_empty() && !url.contains("://") {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_covers_every_url_form() {
        for (url, masked) in [
            ("", ""),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@host:6379", "redis://:****@host:6379"),
            ("rediss://user:p@ss:w@host/2", "rediss://user:****@host/2"),
            ("redis://pw@host", "redis://****@host"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=pw",
                "redis+unix:///tmp/r.sock?db=1&pass=****",
            ),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }
}
