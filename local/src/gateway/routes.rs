//! Which route takes a request: literal segments before `{vars}`, a specific method before
//! `ANY`, greedy `{proxy+}` after both, `$default` last; and the path parameters it captures,
//! percent-decoded as API Gateway decodes them.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use super::GatewayRoute;
use crate::template::RouteMatch;

/// The route for `method` and `path`, with its path parameters.
pub fn match_route<'a>(
    routes: &'a [GatewayRoute],
    method: &str,
    path: &str,
) -> Option<(&'a GatewayRoute, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    // (not greedy, literal segments, specific method): the larger, the more specific.
    type Score = (bool, usize, bool);
    let mut best: Option<(Score, &GatewayRoute, BTreeMap<String, String>)> = None;
    let mut fallback = None;
    for route in routes {
        let (route_method, route_path) = match &route.matcher {
            RouteMatch::Default => {
                fallback = Some(route);
                continue;
            }
            RouteMatch::Path { method, path } => (method, path),
        };
        if route_method != "ANY" && route_method != method {
            continue;
        }
        let Some((params, literals, greedy)) = match_path(route_path, &segments) else {
            continue;
        };
        let score = (!greedy, literals, route_method != "ANY");
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, route, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
        .or_else(|| fallback.map(|r| (r, BTreeMap::new())))
}

/// Matches a route path against request segments: parameters, literal count, greedy or not.
fn match_path(
    route_path: &str,
    segments: &[&str],
) -> Option<(BTreeMap<String, String>, usize, bool)> {
    let pattern: Vec<&str> = route_path.split('/').skip(1).collect();
    let mut params = BTreeMap::new();
    let mut literals = 0;
    for (i, part) in pattern.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            if i >= segments.len() {
                return None;
            }
            let rest = segments[i..].join("/");
            if rest.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(&rest));
            return Some((params, literals, true));
        }
        let segment = segments.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(segment));
        } else if part == segment {
            literals += 1;
        } else {
            return None;
        }
    }
    (pattern.len() == segments.len()).then_some((params, literals, false))
}

/// A path segment as the function sees it in `pathParameters`: `%XX` decoded (invalid UTF-8
/// replaced), `+` kept (a path is not a form).
fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::tests::route;

    #[test]
    fn the_most_specific_route_wins() {
        let routes = vec![
            route("GET /v1/triggers/{id}", "get", None),
            route("POST /v1/triggers/draft", "draft", None),
            route("POST /v1/triggers/{id}", "post-id", None),
            route("ANY /v1/triggers/{id}", "any-id", None),
            route("ANY /{proxy+}", "proxy", None),
            route("$default", "default", None),
        ];
        let pick = |m: &str, p: &str| {
            match_route(&routes, m, p).map(|(r, params)| (r.binary.clone(), params))
        };
        assert_eq!(
            pick("POST", "/v1/triggers/draft").map(|x| x.0),
            Some("draft".into())
        );
        let (binary, params) = pick("GET", "/v1/triggers/a%20b").expect("a route");
        assert_eq!(binary, "get");
        assert_eq!(params["id"], "a b");
        assert_eq!(
            pick("POST", "/v1/triggers/7").map(|x| x.0),
            Some("post-id".into())
        );
        assert_eq!(
            pick("DELETE", "/v1/triggers/7").map(|x| x.0),
            Some("any-id".into())
        );
        let (binary, params) = pick("GET", "/v1/other/deep/path").expect("a route");
        assert_eq!(
            (binary.as_str(), params["proxy"].as_str()),
            ("proxy", "v1/other/deep/path")
        );
        assert_eq!(pick("GET", "/").map(|x| x.0), Some("default".into()));
        assert!(match_route(&routes[..2], "GET", "/v1/triggers").is_none());
    }

    #[test]
    fn path_parameters_are_percent_decoded_and_keep_plus_signs() {
        assert_eq!(decode("a%20b"), "a b");
        assert_eq!(decode("a+b"), "a+b");
        assert_eq!(decode("%E2%9C%93"), "\u{2713}");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode("100%"), "100%");
    }
}
