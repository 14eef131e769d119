//! Principals of mTLS clients: the certificate subject as Kafka prints it, and Kafka's
//! `ssl.principal.mapping.rules`.
//!
//! Kafka names an mTLS client `User:<dn>`, where `<dn>` is the subject printed by Java's
//! `X500Principal.getName()` (RFC 2253) and then rewritten by the mapping rules (`DEFAULT`
//! keeps it as is).

use regex::{Captures, Regex};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject DN of a DER certificate, printed as Java's `X500Principal.getName()` does:
/// RDNs most specific first (the reverse of the encoded order) joined by `,`; the values of a
/// multi-valued RDN in encoded order joined by `+`; the keywords CN, C, L, ST, O, OU, STREET,
/// DC and UID, other attributes as a dotted OID with the value as `#` and the lower-case hex of
/// its DER encoding (also for values that are not strings); `, = + < > # ; " \` escaped with a
/// backslash, NUL as `\00`, and leading and trailing spaces escaped.
pub fn subject_dn(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let rdns: Vec<_> = cert.subject().iter().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = ava.attr_type().to_id_string();
            let value = ava.attr_value();
            match (keyword(&oid), decode_string(value.tag().0, value.data)) {
                (Some(kw), Some(text)) => {
                    out.push_str(kw);
                    out.push('=');
                    push_escaped(&mut out, &text);
                }
                (kw, _) => {
                    out.push_str(kw.unwrap_or(&oid));
                    out.push_str("=#");
                    push_der_hex(
                        &mut out,
                        value.class() as u8,
                        value.header.is_constructed(),
                        value.tag().0,
                        value.data,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// The RFC 2253 keyword Java prints for an attribute OID, if it has one.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a value of the string types Java prints as text (UTF8String, PrintableString,
/// T61String, IA5String, GeneralString, BMPString); `None` for other types. Like Java, the
/// content bytes are decoded as UTF-8 whatever the type (invalid bytes become U+FFFD), so a
/// BMPString or a non-ASCII T61String prints as Kafka would print it, oddities included.
fn decode_string(tag: u32, data: &[u8]) -> Option<String> {
    match tag {
        12 | 19 | 20 | 22 | 27 | 30 => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

/// Appends `value` with RFC 2253 escaping as Java's `AVA.toRFC2253String` does it.
fn push_escaped(out: &mut String, value: &str) {
    let chars: Vec<char> = value.chars().collect();
    let edge = |c: char| c == ' ' || c == '\r';
    let lead = chars.iter().take_while(|&&c| edge(c)).count();
    let trail_start = chars.len() - chars.iter().rev().take_while(|&&c| edge(c)).count();
    for (i, &c) in chars.iter().enumerate() {
        if matches!(c, ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\')
            || i < lead
            || i >= trail_start
        {
            out.push('\\');
            out.push(c);
        } else if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
}

/// Appends the lower-case hex of the DER encoding (identifier, length, contents) of a value.
fn push_der_hex(out: &mut String, class: u8, constructed: bool, tag: u32, data: &[u8]) {
    let mut bytes = Vec::with_capacity(data.len() + 8);
    let first = (class << 6) | if constructed { 0x20 } else { 0 };
    if tag < 31 {
        bytes.push(first | tag as u8);
    } else {
        bytes.push(first | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            bytes.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
        }
    }
    let len = data.len();
    if len < 0x80 {
        bytes.push(len as u8);
    } else {
        let be = len.to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        bytes.push(0x80 | (be.len() - skip) as u8);
        bytes.extend_from_slice(&be[skip..]);
    }
    bytes.extend_from_slice(data);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
}

/// Case change applied to a rule's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// One mapping rule.
#[derive(Clone, Debug)]
enum Rule {
    /// `DEFAULT`: the DN unchanged.
    Default,
    /// `RULE:<regex>/<replacement>/[LU]`.
    Replace {
        /// The rule's regex, as written.
        regex: Regex,
        /// The same regex anchored at both ends (Java's `matches()`).
        whole: Regex,
        replacement: String,
        case: Case,
    },
}

/// Kafka's `ssl.principal.mapping.rules`: rules tried in order on a subject DN; the first that
/// applies gives the principal name.
///
/// Syntax (as Kafka's `SslPrincipalMapper`): rules separated by commas (whitespace around them
/// ignored; a newline also separates rules here, which Kafka does not need since its examples
/// always put a comma too). `DEFAULT` gives the DN unchanged. `RULE:<regex>/<replacement>/` with
/// an optional `L` or `U` after the last slash applies when the regex matches the whole DN; the
/// result is Java's `dn.replaceAll(regex, replacement)`, lower- or upper-cased. In the regex and
/// the replacement a backslash escapes the next character (so `\/` is a slash). The replacement
/// takes `$n` and `${name}` group references as Java does (`$n` naming a group the regex does
/// not have stays literal text when the regex has groups). Empty entries are ignored; anything
/// else is an error. A DN no rule applies to is an error, as in Kafka (the connection fails).
///
/// The regex is compiled by the `regex` crate, whose syntax is close to Java's for what mapping
/// rules use; Java-only constructs (look-around, back-references) are refused when parsing.
#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapper {
    /// Kafka's default rules: `DEFAULT`.
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

/// Reads a `RULE:` section up to the next unescaped `/`; returns it and the rest after the `/`.
fn take_section(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '/' {
            return Some((&s[..i], &s[i + 1..]));
        }
    }
    None
}

fn is_separator(c: char) -> bool {
    c == ',' || c == '\n'
}

impl PrincipalMapper {
    /// Parses a rules string; errors name the offending rule.
    pub fn parse(rules: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        let mut rest = rules;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() && c != '\n');
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix(is_separator) {
                rest = r;
                continue;
            }
            let tail;
            if let Some(after) = rest.strip_prefix("RULE:") {
                let bad = || format!("invalid rule: {:?}", first_entry(rest));
                let (pattern, after) = take_section(after).ok_or_else(bad)?;
                let (replacement, after) = take_section(after).ok_or_else(bad)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile = |p: &str| {
                    Regex::new(p).map_err(|e| format!("invalid rule regex {pattern:?}: {e}"))
                };
                let regex = compile(pattern)?;
                let whole = compile(&format!("^(?:{pattern})$"))?;
                parsed.push(Rule::Replace {
                    regex,
                    whole,
                    replacement: replacement.to_string(),
                    case,
                });
                tail = after;
            } else if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                tail = after;
            } else {
                return Err(format!("invalid rule: {:?}", first_entry(rest)));
            }
            let tail = tail.trim_start_matches(|c: char| c.is_whitespace() && c != '\n');
            match tail.chars().next() {
                None => break,
                Some(c) if is_separator(c) => rest = &tail[c.len_utf8()..],
                Some(_) => {
                    return Err(format!(
                        "invalid rule: {:?}, unmatched text {:?}",
                        first_entry(rest),
                        first_entry(tail)
                    ));
                }
            }
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for a DN: the result of the first rule that applies.
    pub fn map(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    regex,
                    whole,
                    replacement,
                    case,
                } => {
                    if let Some(caps) = whole.captures(dn) {
                        return finish(regex, replacement, *case, dn, &caps);
                    }
                }
            }
        }
        Err(format!("no mapping rule applies to {dn:?}"))
    }

    /// `User:` followed by [`PrincipalMapper::map`].
    pub fn principal(&self, dn: &str) -> Result<String, String> {
        Ok(format!("User:{}", self.map(dn)?))
    }
}

/// A rule's result from the captures of its whole-DN match (same group numbers as `regex`).
fn finish(
    regex: &Regex,
    replacement: &str,
    case: Case,
    dn: &str,
    caps: &Captures<'_>,
) -> Result<String, String> {
    let groups = regex.captures_len() - 1;
    let mut out = expand(replacement, groups, caps, regex)?;
    // Java's replaceAll goes on after the whole-DN match and also replaces an empty match at
    // the very end, if the regex has one there (e.g. an unanchored `.*`).
    if !dn.is_empty()
        && let Some(end_caps) = regex.captures_at(dn, dn.len())
    {
        out.push_str(&expand(replacement, groups, &end_caps, regex)?);
    }
    Ok(match case {
        Case::Keep => out,
        Case::Lower => out.to_lowercase(),
        Case::Upper => out.to_uppercase(),
    })
}

/// The first comma- or newline-separated entry of `s`, for error messages.
fn first_entry(s: &str) -> &str {
    s.split(is_separator).next().unwrap_or(s).trim()
}

/// Expands a Java replacement string (`\x` literal, `$n`, `${name}`), with Kafka's rule that
/// `$n` beyond the group count (after dropping trailing digits) is literal text when the regex
/// has groups.
fn expand(
    replacement: &str,
    groups: usize,
    caps: &Captures<'_>,
    regex: &Regex,
) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => return Err("replacement ends with a lone backslash".to_string()),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(n) if n.is_ascii_alphanumeric() => name.push(n),
                            _ => return Err("bad named group reference in replacement".into()),
                        }
                    }
                    if !regex.capture_names().any(|n| n == Some(name.as_str())) {
                        return Err(format!("no group named {name:?} in the rule regex"));
                    }
                    out.push_str(caps.name(&name).map_or("", |m| m.as_str()));
                    continue;
                }
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let Some(first) = digits.chars().next() else {
                    return Err("illegal group reference in replacement".to_string());
                };
                let first = first.to_digit(10).unwrap_or(0) as usize;
                if first > groups {
                    if groups == 0 {
                        return Err(format!("no group {first} in the rule regex"));
                    }
                    // Kafka escapes such a reference: it stays as text.
                    out.push('$');
                    out.push_str(&digits);
                    continue;
                }
                // Java reads as many digits as still name an existing group.
                let mut n = first;
                let mut used = 1;
                for d in digits.chars().skip(1) {
                    let next = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                    if next > groups {
                        break;
                    }
                    n = next;
                    used += 1;
                }
                out.push_str(caps.get(n).map_or("", |m| m.as_str()));
                out.push_str(&digits[used..]);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test certificates (self-signed, made with the `openssl req -x509` CLI).
    fn fixture(name: &str) -> Vec<u8> {
        match name {
            "simple.der" => include_bytes!("testdata/simple.der").to_vec(),
            "special.der" => include_bytes!("testdata/special.der").to_vec(),
            "edges.der" => include_bytes!("testdata/edges.der").to_vec(),
            "legacy-strings.der" => include_bytes!("testdata/legacy-strings.der").to_vec(),
            _ => Vec::new(),
        }
    }

    /// Expected strings are what Java 17's `X500Principal.getName()` printed for the fixtures.
    #[test]
    fn subject_dn_matches_java() {
        let cases = [
            ("simple.der", "CN=client,OU=eng,O=Acme,C=US"),
            (
                "special.der",
                "1.2.840.113549.1.9.1=#160d6a406578616d706c652e636f6d,\
                 CN=José \\#1 \\<a\\;b\\> \\\"q\\\"\\\\ x\\=y,OU=team+UID=u42,\
                 OU=eng\\+ops,O=Acme\\, Inc.,DC=example,DC=com",
            ),
            ("edges.der", "ST=Zürich,L=\\ spaced\\ \\ ,CN=\\#lead"),
            // A BMPString and a T61String: Java decodes their bytes as UTF-8 anyway.
            (
                "legacy-strings.der",
                "O=\u{3}\u{fffd}\\00m\\00e\\00g\\00a,CN=caf\u{fffd}",
            ),
        ];
        for (file, want) in cases {
            assert_eq!(subject_dn(&fixture(file)).as_deref(), Ok(want), "{file}");
        }
    }

    #[test]
    fn subject_dn_rejects_garbage() {
        assert!(subject_dn(b"").is_err());
        assert!(subject_dn(b"\x30\x03\x02\x01\x01").is_err());
        let mut cert = fixture("simple.der");
        cert.truncate(cert.len() / 2);
        assert!(subject_dn(&cert).is_err());
    }

    #[test]
    fn escaping_and_der_hex() {
        let mut s = String::new();
        push_escaped(&mut s, " a\0b ");
        assert_eq!(s, "\\ a\\00b\\ ");
        let mut h = String::new();
        push_der_hex(&mut h, 0, false, 2, &[1]);
        assert_eq!(h, "020101");
        let mut h = String::new();
        push_der_hex(&mut h, 2, true, 40, &[0xab; 200]);
        assert!(h.starts_with("bf2881c8abab"), "{h}");
        assert_eq!(h.len(), 2 * (2 + 2 + 200));
        assert_eq!(
            decode_string(30, &[0, b'h', 0x00, 0xe9]).as_deref(),
            Some("\0h\0\u{fffd}")
        );
        assert_eq!(decode_string(4, b"x"), None);
    }

    #[test]
    fn kafka_documentation_examples() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n\
                     RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\n\
                     RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\n\
                     DEFAULT";
        let m = PrincipalMapper::parse(rules).expect("rules");
        let cases = [
            (
                "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "serviceuser",
            ),
            (
                "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "adminuser@admin",
            ),
            ("CN=kafka1.example.com,OU=X", "kafka1.example.com"),
            ("OU=Nobody,O=Acme", "OU=Nobody,O=Acme"),
        ];
        for (dn, want) in cases {
            assert_eq!(m.map(dn).as_deref(), Ok(want), "{dn}");
        }
        let upper = PrincipalMapper::parse("RULE:^CN=([^,]*),.*$/$1/U").expect("rule");
        assert_eq!(upper.map("CN=alice,O=x").as_deref(), Ok("ALICE"));
        assert_eq!(upper.principal("CN=alice,O=x").as_deref(), Ok("User:ALICE"));
    }

    #[test]
    fn rule_order_and_no_match() {
        let m = PrincipalMapper::parse("RULE:^CN=a.*$/first/, RULE:^CN=.*$/second/").expect("ok");
        assert_eq!(m.map("CN=ab").as_deref(), Ok("first"));
        assert_eq!(m.map("CN=b").as_deref(), Ok("second"));
        assert!(m.map("O=x").is_err());
        // The regex must match the whole DN, not a part of it.
        let part = PrincipalMapper::parse("RULE:CN=([a-z]+)/$1/").expect("ok");
        assert_eq!(part.map("CN=bob").as_deref(), Ok("bob"));
        assert!(part.map("CN=bob,O=x").is_err());
        // A leftmost-first match shorter than the DN does not hide a whole match.
        let alt = PrincipalMapper::parse("RULE:(a|ab)/[$1]/").expect("ok");
        assert_eq!(alt.map("ab").as_deref(), Ok("[ab]"));
        assert!(
            PrincipalMapper::parse("")
                .expect("empty")
                .map("CN=x")
                .is_err()
        );
        assert_eq!(
            PrincipalMapper::default().map("CN=x").as_deref(),
            Ok("CN=x")
        );
    }

    #[test]
    fn replacement_syntax() {
        let cases = [
            // (rule, dn, expected)
            ("RULE:^CN=(.*)$/$1$2/", "CN=x", Ok("x$2")),
            (
                "RULE:^(C)(N)=(.)(.)(.)(.)(.)(.)(.)(.)$/$10|$11|$1/",
                "CN=abcdefgh",
                Ok("h|C1|C"),
            ),
            ("RULE:^CN=(.*)$/\\$1 \\\\ $0/", "CN=x", Ok("$1 \\ CN=x")),
            ("RULE:^CN=(?P<n>[a-z]+)$/${n}!/", "CN=abc", Ok("abc!")),
            ("RULE:^CN=([a-z]+)(,O=(.*))?$/$1:$3/", "CN=abc", Ok("abc:")),
            ("RULE:^CN=x\\/y$/slash/", "CN=x/y", Ok("slash")),
            ("RULE:^CN=(.*)$/a\\/b$1/", "CN=x", Ok("a/bx")),
            ("RULE:^CN=(.*)$/$1/L", "CN=MiXeD", Ok("mixed")),
            // Java's replaceAll also replaces the empty match at the end of an unanchored `.*`.
            ("RULE:.*/X/", "CN=x", Ok("XX")),
            ("RULE:^.*$/X/", "CN=x", Ok("X")),
            ("RULE:^CN=.*$/$1/", "CN=x", Err(())),
            ("RULE:^CN=(.*)$/${nope}/", "CN=x", Err(())),
            ("RULE:^CN=(.*)$/$/", "CN=x", Err(())),
        ];
        for (rule, dn, want) in cases {
            let m = PrincipalMapper::parse(rule).expect(rule);
            assert_eq!(m.map(dn).as_deref().map_err(|_| ()), want, "{rule} on {dn}");
        }
    }

    #[test]
    fn rule_list_syntax() {
        let ok = [
            ("DEFAULT", 1),
            ("  DEFAULT  ", 1),
            ("RULE:a/b/, DEFAULT", 2),
            ("RULE:a/b/L ,\n  RULE:c/d/U,DEFAULT", 3),
            ("RULE:a/b/\nDEFAULT", 2),
            ("RULE:^CN=(.*?),OU=(.*?)$/$1,$2/", 1),
            (",,DEFAULT,,", 1),
            ("", 0),
        ];
        for (rules, n) in ok {
            let m = PrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"));
            assert_eq!(m.rules.len(), n, "{rules:?}");
        }
        let bad = [
            "NOPE",
            "DEFAULTX",
            "DEFAULT x",
            "RULE:a/b",
            "RULE:a",
            "RULE:a/b/X",
            "RULE:a/b/Lx",
            "RULE:(/b/",
            "RULE:a(?=b)/c/",
            "DEFAULT, rule:a/b/",
        ];
        for rules in bad {
            assert!(
                PrincipalMapper::parse(rules).is_err(),
                "{rules:?} should be refused"
            );
        }
        // A comma inside the regex belongs to the rule.
        let m = PrincipalMapper::parse("RULE:^CN=([^,]+),O=.*$/$1/, DEFAULT").expect("ok");
        assert_eq!(m.map("CN=a,O=b").as_deref(), Ok("a"));
        assert_eq!(m.map("O=b").as_deref(), Ok("O=b"));
    }

    #[test]
    fn certificate_to_principal() {
        let dn = subject_dn(&fixture("simple.der")).expect("dn");
        let m = PrincipalMapper::parse("RULE:^CN=([^,]+),OU=eng,.*$/$1/, DEFAULT").expect("ok");
        assert_eq!(m.principal(&dn).as_deref(), Ok("User:client"));
        let dn = subject_dn(&fixture("special.der")).expect("dn");
        assert_eq!(
            PrincipalMapper::default().principal(&dn).ok(),
            Some(format!("User:{dn}"))
        );
    }
}
