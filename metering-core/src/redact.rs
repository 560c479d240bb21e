//! Hiding secrets in connection URLs before they reach a log line, an error or a `Debug`.

/// Query parameters whose values are secrets (compared without regard to case).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "api_key",
    "apikey",
    "access_token",
    "sslpassword",
];

/// `url` with its secrets replaced by `***`, for logs, errors and `Debug` output.
///
/// - `scheme://user:password@host` becomes `scheme://user:***@host`;
/// - a lone `scheme://token@host`, which some services read as a password, becomes
///   `scheme://***@host`;
/// - the values of query parameters that carry secrets (`password`, `token`, `key`, ...)
///   become `***`.
///
/// Text that is not a URL is returned as it is.
///
/// # Examples
///
/// ```
/// use metering_core::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://app:hunter2@db:5432/m?sslmode=require&password=x"),
///     "postgres://app:***@db:5432/m?sslmode=require&password=***"
/// );
/// assert_eq!(redact_url("redis://token@cache:6379"), "redis://***@cache:6379");
/// assert_eq!(redact_url("sqlite://metering.db"), "sqlite://metering.db");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => out.push_str("***@"),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.find('#') {
        Some(at) => tail.split_at(at),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_secret(name) => {
                        out.push_str(name);
                        out.push_str("=***");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

fn is_secret(name: &str) -> bool {
    SECRET_PARAMS
        .iter()
        .any(|secret| secret.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_form_of_secret_is_hidden() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
            ("rediss://user:pw@h/1?x=@", "rediss://user:***@h/1?x=@"),
            ("redis://token@h", "redis://***@h"),
            ("postgres://app@db/m", "postgres://***@db/m"),
            ("postgres://db:5432/m", "postgres://db:5432/m"),
            (
                "postgres://me:secret@db:5432/x?sslmode=require",
                "postgres://me:***@db:5432/x?sslmode=require",
            ),
            (
                "postgres://db/x?user=a&Password=b#f",
                "postgres://db/x?user=a&Password=***#f",
            ),
            ("http://user:p@ss@host:1/x", "http://user:***@host:1/x"),
            ("http://host", "http://host"),
            ("sqlite://metering.db", "sqlite://metering.db"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    proptest! {
        /// Whatever the password, it never appears in the redacted text.
        #[test]
        fn passwords_never_show(
            scheme in "(postgres|redis|rediss|http|https)",
            user in "[a-z]{0,8}",
            password in "[A-Za-z0-9!$%^*()_+]{6,24}",
            host in "[a-z]{1,10}(:[0-9]{2,5})?",
            path in "(/[a-z]{0,6})?",
            in_query in any::<bool>(),
        ) {
            let url = if in_query {
                format!("{scheme}://{host}{path}?sslmode=require&password={password}")
            } else {
                format!("{scheme}://{user}:{password}@{host}{path}")
            };
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&password), "{} -> {}", url, shown);
            prop_assert!(shown.contains(&host), "{} -> {}", url, shown);
        }
    }
}
