//! Names and paths: which delegation covers a target (shell-style `paths`, where `*` does not
//! match `/`, and `path_hash_prefixes`), role names quoted into URLs and file names, and target
//! names checked and placed under consistent snapshots.

use sha2::Digest;

/// Whether `pattern` matches `target`: both split on `/` into the same number of parts, each
/// part matched shell-style (`*` any run, `?` one character, `[seq]` and `[!seq]`), so `*`
/// never matches across a `/`.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| glob(p, t))
}

/// Shell-style matching of one part (Python's `fnmatch`, case-sensitive).
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*`: linear in practice and
    // never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A `[...]` class at `p[start]`: whether `c` is in it and the index after it; `None` when the
/// bracket is not closed (then it is a literal `[`).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// The hex SHA-256 of a target name, which `path_hash_prefixes` and hashed bins are cut from.
pub fn target_hash(target: &str) -> String {
    hex::encode(sha2::Sha256::digest(target.as_bytes()))
}

/// Whether any prefix begins the hex SHA-256 of the target name.
pub fn hash_prefix_matches(prefixes: &[String], target: &str) -> bool {
    let hash = target_hash(target);
    prefixes.iter().any(|p| hash.starts_with(p.as_str()))
}

/// Percent-encodes every byte but `A-Za-z0-9-._~` (Python's `quote(name, "")`).
pub fn quote(name: &str) -> String {
    quote_keeping(name, b"")
}

fn quote_keeping(name: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file a role's metadata is kept in: its name quoted, then `.json`. Never a path: a role
/// named `../x` or `a/b` stays one file in the metadata directory.
pub fn role_file(role: &str) -> String {
    format!("{}.json", quote(role))
}

/// Where a role's metadata is fetched, relative to the metadata base URL: `N.ROLE.json` for a
/// version (the root always, the others under consistent snapshots), else `ROLE.json`; the
/// role's name quoted.
pub fn role_url_path(role: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{v}.{}", role_file(role)),
        None => role_file(role),
    }
}

/// Where a target is fetched, relative to the targets base URL: its name with each `/`-part
/// quoted; under consistent snapshots the last part is prefixed with `HASH.` (`dir/HASH.name`).
pub fn target_url_path(name: &str, consistent_hash: Option<&str>) -> String {
    let quoted = quote_keeping(name, b"/");
    match consistent_hash {
        None => quoted,
        Some(hash) => match quoted.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{hash}.{base}"),
            None => format!("{hash}.{quoted}"),
        },
    }
}

/// Why a target name is not a safe relative path, if it is not: empty, absolute, a backslash
/// or NUL, or an empty, `.` or `..` part.
pub fn unsafe_target_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('/') {
        Some("it is absolute")
    } else if name.contains('\\') || name.contains('\0') {
        Some("it contains a backslash or NUL")
    } else if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("a component is empty, `.` or `..`")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_does_not_match_a_slash() {
        assert!(path_matches("targets/*.tgz", "targets/a.tgz"));
        assert!(!path_matches("targets/*.tgz", "targets/sub/a.tgz"));
        assert!(!path_matches("*", "a/b"));
        assert!(path_matches("*/*", "a/b"));
        assert!(path_matches("a/?.[!x]z", "a/b.yz"));
        assert!(!path_matches("a/?.[!x]z", "a/b.xz"));
        assert!(path_matches("file[0-9]", "file7"));
        assert!(glob("*a*b*c", "xxaxxbxxc"));
        assert!(!glob("*a*b*c", "xxaxxbxx"));
        assert!(glob("[", "["));
    }

    #[test]
    fn role_names_are_quoted_into_one_file() {
        assert_eq!(role_file("../delegatedrole"), "..%2Fdelegatedrole.json");
        assert_eq!(role_file("/delegatedrole"), "%2Fdelegatedrole.json");
        assert_eq!(role_url_path("?", Some(2)), "2.%3F.json");
        assert_eq!(role_url_path("#", None), "%23.json");
    }

    #[test]
    fn consistent_targets_are_dir_hash_name() {
        assert_eq!(target_url_path("a/b/c.txt", Some("ab")), "a/b/ab.c.txt");
        assert_eq!(target_url_path("c.txt", Some("ab")), "ab.c.txt");
        assert_eq!(target_url_path("a b", None), "a%20b");
    }
}
