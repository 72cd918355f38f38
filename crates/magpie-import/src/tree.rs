//! A tolerant markup reader shared by OFX and CAMT. It reads XML and OFX's SGML dialect alike: a tag
//! followed by text is a leaf that closes itself at the next tag, a closing tag closes everything opened
//! since its opening tag, an element never contains another of its own name, namespace prefixes are
//! dropped, and comments, processing instructions and CDATA are handled. Broken markup is read as far as
//! it makes sense rather than refused: the parsers decide what is missing.

use std::borrow::Cow;

use crate::ParseError;

/// An element. Names and text borrow from the input where they can (most of a large file), so building
/// the tree allocates little beyond the nodes themselves.
#[derive(Debug, Default)]
pub struct Node<'a> {
    /// Local name (upper-cased for OFX).
    pub name: Cow<'a, str>,
    /// Attributes, local names.
    pub attrs: Vec<(String, String)>,
    /// Text content (entities decoded).
    pub text: Option<Cow<'a, str>>,
    /// Child elements in document order.
    pub children: Vec<Node<'a>>,
    /// 1-based line where the element starts.
    pub line: usize,
}

impl<'a> Node<'a> {
    /// First descendant (depth-first) with this name.
    pub fn find(&self, name: &str) -> Option<&Node<'a>> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(n) = c.find(name) {
                return Some(n);
            }
        }
        None
    }

    /// All descendants with this name, not looking inside matches.
    pub fn find_all<'s>(&'s self, name: &str, out: &mut Vec<&'s Node<'a>>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            } else {
                c.find_all(name, out);
            }
        }
    }

    /// A direct child.
    pub fn child(&self, name: &str) -> Option<&Node<'a>> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Follow a path of direct children.
    pub fn path(&self, names: &[&str]) -> Option<&Node<'a>> {
        let mut n = self;
        for name in names {
            n = n.child(name)?;
        }
        Some(n)
    }

    /// Trimmed non-empty text of this element.
    pub fn value(&self) -> Option<&str> {
        self.text.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// Text of the first descendant with this name.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.find(name).and_then(|n| n.value())
    }

    /// Text of the first descendant (depth-first) with this name that has any.
    pub fn first_text(&self, name: &str) -> Option<&str> {
        for c in &self.children {
            if c.name == name
                && let Some(v) = c.value()
            {
                return Some(v);
            }
            if let Some(v) = c.first_text(name) {
                return Some(v);
            }
        }
        None
    }

    /// Text of a direct child.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|n| n.value())
    }

    /// Text at a path of direct children.
    pub fn path_text(&self, names: &[&str]) -> Option<&str> {
        self.path(names).and_then(|n| n.value())
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Decode `&amp;`-style entities (twice when a file escaped them twice, as some banks do). Borrows when
/// there is nothing to decode.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(unescape_owned(s))
}

fn unescape_owned(s: &str) -> String {
    fn once(s: &str) -> String {
        if !s.contains('&') {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let replaced = tail.find(';').filter(|e| *e <= 10).and_then(|e| {
                let entity = &tail[1..e];
                let ch = match entity {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    "copy" => Some('©'),
                    e if e.starts_with("#x") || e.starts_with("#X") => {
                        u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
                    }
                    e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                    _ => None,
                }?;
                Some((ch, e + 1))
            });
            match replaced {
                Some((ch, len)) => {
                    out.push(ch);
                    rest = &tail[len..];
                }
                None => {
                    out.push('&');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
    let first = once(s);
    if first.contains("&lt;") || first.contains("&gt;") || first.contains("&amp;") || first.contains("&quot;") {
        once(&first)
    } else {
        first
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Split `Amt Ccy="EUR"` into the local name and attributes; `None` when it is not a tag at all (a
/// literal `<` in text). Borrows: most tags have no attributes and an upper-case name already.
fn parse_tag(raw: &str) -> Option<(&str, Vec<(String, String)>)> {
    let body = raw.trim_start_matches('/').trim_end_matches('/').trim();
    let (name, rest) = match body.find(|c: char| c.is_whitespace()) {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    let valid = !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphabetic() | (name.as_bytes()[0] == b'_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
    if !valid {
        return None;
    }
    let mut attrs = Vec::new();
    let mut r = rest.trim();
    while !r.is_empty() {
        let Some(eq) = r.find('=') else { break };
        let key = r[..eq].trim();
        let after = r[eq + 1..].trim_start();
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let end = after[1..].find(quote)? + 1;
        attrs.push((local(key).to_owned(), unescape(&after[1..end]).into_owned()));
        r = after[end + 1..].trim_start();
    }
    Some((local(name), attrs))
}

fn attach<'a>(stack: &mut [Node<'a>], root: &mut Node<'a>, node: Node<'a>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => root.children.push(node),
    }
}

/// Text between tags: a slice of the input in the common case (one run of text), owned when it was
/// assembled from pieces (CDATA, a literal `<`).
#[derive(Default)]
struct Pending {
    start: usize,
    end: usize,
    owned: Option<String>,
}

impl Pending {
    fn push_slice(&mut self, body: &str, start: usize, end: usize) {
        match &mut self.owned {
            Some(o) => o.push_str(&body[start..end]),
            None if self.start == self.end => {
                self.start = start;
                self.end = end;
            }
            None if self.end == start => self.end = end,
            None => {
                let mut o = body[self.start..self.end].to_owned();
                o.push_str(&body[start..end]);
                self.owned = Some(o);
            }
        }
    }

    fn push_str(&mut self, body: &str, s: &str) {
        let o = self.owned.get_or_insert_with(|| body[self.start..self.end].to_owned());
        o.push_str(s);
    }

    fn take<'b>(&mut self, body: &'b str) -> Cow<'b, str> {
        let out = match self.owned.take() {
            Some(o) => std::borrow::Cow::Owned(o),
            None => std::borrow::Cow::Borrowed(&body[self.start..self.end]),
        };
        self.start = 0;
        self.end = 0;
        out
    }
}

/// Build the element tree of `body` (whose first line is `first_line` of the file). `upper` upper-cases
/// names (OFX is case-insensitive).
pub fn build<'a>(body: &'a str, first_line: usize, upper: bool) -> Result<Node<'a>, ParseError> {
    let mut root = Node { name: "#root".into(), ..Node::default() };
    let mut stack: Vec<Node<'a>> = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut line = first_line;
    let mut pending = Pending::default();
    let flush = |pending: &mut Pending, stack: &mut Vec<Node<'a>>| {
        let raw = pending.take(body);
        let text: Cow<'a, str> = match raw {
            Cow::Borrowed(b) => {
                let trimmed = b.trim();
                if trimmed.is_empty() {
                    return;
                }
                unescape(trimmed)
            }
            Cow::Owned(o) => {
                let trimmed = o.trim();
                if trimmed.is_empty() {
                    return;
                }
                Cow::Owned(unescape(trimmed).into_owned())
            }
        };
        if let Some(top) = stack.last_mut() {
            match &mut top.text {
                Some(t) => {
                    let joined = format!("{t} {text}");
                    *t = Cow::Owned(joined);
                }
                None => top.text = Some(text),
            }
        }
    };
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let next = memchr::memchr(b'<', &bytes[i..]).map(|e| i + e).unwrap_or(bytes.len());
            line += memchr::memchr_iter(b'\n', &bytes[i..next]).count();
            pending.push_slice(body, i, next);
            i = next;
            continue;
        }
        let rest = &body[i..];
        if rest.starts_with("<!--") {
            let end = rest.find("-->").map(|e| i + e + 3).unwrap_or(bytes.len());
            line += memchr::memchr_iter(b'\n', &bytes[i..end]).count();
            i = end;
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").map(|e| i + e).unwrap_or(bytes.len());
            // CDATA is literal: keep it out of entity decoding.
            pending.push_str(body, &body[i + 9..end].replace('&', "&amp;"));
            line += memchr::memchr_iter(b'\n', &bytes[i..end]).count();
            i = (end + 3).min(bytes.len());
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            i = memchr::memchr(b'>', &bytes[i..]).map(|e| i + e + 1).unwrap_or(bytes.len());
            continue;
        }
        let Some(close_at) = memchr::memchr(b'>', &bytes[i..]).map(|e| i + e) else {
            return Err(ParseError::at(line, "a tag is not closed with '>'"));
        };
        let raw = &body[i + 1..close_at];
        let parsed = if memchr::memchr(b'<', raw.as_bytes()).is_some() { None } else { parse_tag(raw) };
        let Some((name, attrs)) = parsed else {
            // A literal '<' in text.
            pending.push_slice(body, i, i + 1);
            i += 1;
            continue;
        };
        let name: Cow<'a, str> = if upper && name.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(name.to_ascii_uppercase())
        } else {
            Cow::Borrowed(name)
        };
        flush(&mut pending, &mut stack);
        let tag_lines = memchr::memchr_iter(b'\n', raw.as_bytes()).count();
        if raw.starts_with('/') {
            if let Some(pos) = stack.iter().rposition(|n| n.name == name) {
                while stack.len() > pos {
                    let node = stack.pop().expect("non-empty");
                    attach(&mut stack, &mut root, node);
                }
            }
        } else {
            // A leaf (text, no children) ends at the next tag.
            if stack.last().is_some_and(|t| t.text.is_some() && t.children.is_empty()) {
                let node = stack.pop().expect("non-empty");
                attach(&mut stack, &mut root, node);
            }
            // An element never contains itself: a second <STMTTRN> while one is open closes the first.
            if let Some(pos) = stack.iter().rposition(|n| n.name == name) {
                while stack.len() > pos {
                    let node = stack.pop().expect("non-empty");
                    attach(&mut stack, &mut root, node);
                }
            }
            let node = Node { name, attrs, text: None, children: Vec::new(), line };
            if raw.trim_end().ends_with('/') {
                attach(&mut stack, &mut root, node);
            } else {
                stack.push(node);
            }
        }
        line += tag_lines;
        i = close_at + 1;
    }
    flush(&mut pending, &mut stack);
    while let Some(node) = stack.pop() {
        attach(&mut stack, &mut root, node);
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_with_attributes_namespaces_and_cdata() {
        let t = build(
            "<ns:Doc xmlns:ns=\"x\">\n<Amt Ccy=\"EUR\">1.50</Amt><N><![CDATA[a & <b>]]></N><E/></ns:Doc>",
            1,
            false,
        )
        .unwrap();
        let doc = t.child("Doc").unwrap();
        assert_eq!(doc.child("Amt").unwrap().attr("Ccy"), Some("EUR"));
        assert_eq!(doc.child_text("Amt"), Some("1.50"));
        assert_eq!(doc.child_text("N"), Some("a & <b>"));
        assert_eq!(doc.child("Amt").unwrap().line, 2);
        assert!(doc.child("E").is_some());
    }

    #[test]
    fn sgml_leaves_close_themselves() {
        let t = build("<OFX><A>1<B>two<C><D>3</C></OFX>", 1, true).unwrap();
        let ofx = t.child("OFX").unwrap();
        assert_eq!(ofx.child_text("A"), Some("1"));
        assert_eq!(ofx.child_text("B"), Some("two"));
        assert_eq!(ofx.path_text(&["C", "D"]), Some("3"));
    }
}
