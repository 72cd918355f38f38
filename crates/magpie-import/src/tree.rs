//! A tolerant markup reader shared by OFX and CAMT. It reads XML and OFX's SGML dialect alike: a tag
//! followed by text is a leaf that closes itself at the next tag, a closing tag closes everything opened
//! since its opening tag, an element never contains another of its own name, namespace prefixes are
//! dropped, and comments, processing instructions and CDATA are handled. Broken markup is read as far as
//! it makes sense rather than refused: the parsers decide what is missing.
//!
//! Hostile markup is refused, not followed: elements nest at most [`MAX_DEPTH`] deep and a file holds at
//! most [`MAX_NODES`] elements (a statement needs a few dozen levels and a few elements per row), every
//! walk over the tree and its drop are loops rather than recursion (so no input can overflow a thread's
//! stack), and closing a tag costs the same however deep the tree is (a count of open names answers "is
//! it open?" without scanning the stack).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::{Cancel, ParseError};

/// The deepest nesting of elements read. Real statements stay under 20.
pub const MAX_DEPTH: usize = 256;
/// The most elements one file may hold: about 80,000 OFX or 30,000 CAMT transactions, and at most about
/// 120 MB of tree.
pub const MAX_NODES: usize = 1_000_000;

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
        let mut stack = vec![self.children.iter()];
        while let Some(level) = stack.last_mut() {
            match level.next() {
                None => {
                    stack.pop();
                }
                Some(c) if c.name == name => return Some(c),
                Some(c) => stack.push(c.children.iter()),
            }
        }
        None
    }

    /// All descendants with this name, not looking inside matches, in document order.
    pub fn find_all<'s>(&'s self, name: &str, out: &mut Vec<&'s Node<'a>>) {
        let mut stack = vec![self.children.iter()];
        while let Some(level) = stack.last_mut() {
            match level.next() {
                None => {
                    stack.pop();
                }
                Some(c) if c.name == name => out.push(c),
                Some(c) => stack.push(c.children.iter()),
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
        let mut stack = vec![self.children.iter()];
        while let Some(level) = stack.last_mut() {
            match level.next() {
                None => {
                    stack.pop();
                }
                Some(c) => {
                    if c.name == name
                        && let Some(v) = c.value()
                    {
                        return Some(v);
                    }
                    stack.push(c.children.iter());
                }
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

impl Drop for Node<'_> {
    /// Children are moved into one list and dropped there, so a deep tree never recurses.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut node) = pending.pop() {
            pending.append(&mut node.children);
        }
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

/// The elements open at a point of the file, innermost last, with a count per name so that "is one
/// named so open?" is answered without a scan.
struct Open<'a> {
    root: Node<'a>,
    stack: Vec<Node<'a>>,
    counts: HashMap<u64, u32>,
    /// Open elements compared by name while closing: what the tests hold to the number of elements.
    compared: usize,
}

/// FNV-1a: a collision only costs a scan that finds nothing, so a fast hash is enough.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl<'a> Open<'a> {
    fn attach(&mut self, node: Node<'a>) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => self.root.children.push(node),
        }
    }

    fn push(&mut self, node: Node<'a>) {
        *self.counts.entry(name_hash(&node.name)).or_insert(0) += 1;
        self.stack.push(node);
    }

    /// Close the innermost element.
    fn pop(&mut self) -> bool {
        let Some(node) = self.stack.pop() else { return false };
        if let Some(c) = self.counts.get_mut(&name_hash(&node.name)) {
            *c = c.saturating_sub(1);
        }
        self.attach(node);
        true
    }

    /// Close the innermost open element named `name` and everything opened inside it; nothing when none
    /// is open. The scan only runs when one probably is, and then costs what it closes.
    fn close(&mut self, name: &str) {
        if self.counts.get(&name_hash(name)).copied().unwrap_or(0) == 0 {
            return;
        }
        let found = self.stack.iter().rposition(|n| n.name == name);
        self.compared += self.stack.len() - found.unwrap_or(0);
        if let Some(pos) = found {
            while self.stack.len() > pos {
                self.pop();
            }
        }
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
/// names (OFX is case-insensitive). Refuses markup nested deeper than [`MAX_DEPTH`] or with more than
/// [`MAX_NODES`] elements, and stops when `cancel` is set.
pub fn build<'a>(body: &'a str, first_line: usize, upper: bool, cancel: &Cancel) -> Result<Node<'a>, ParseError> {
    build_counting(body, first_line, upper, cancel).map(|(tree, _)| tree)
}

/// [`build`], also telling how many open elements were compared while closing tags.
fn build_counting<'a>(
    body: &'a str,
    first_line: usize,
    upper: bool,
    cancel: &Cancel,
) -> Result<(Node<'a>, usize), ParseError> {
    let mut open = Open {
        root: Node { name: "#root".into(), attrs: Vec::new(), text: None, children: Vec::new(), line: 0 },
        stack: Vec::new(),
        counts: HashMap::new(),
        compared: 0,
    };
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut line = first_line;
    let mut nodes = 0usize;
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
        flush(&mut pending, &mut open.stack);
        let tag_lines = memchr::memchr_iter(b'\n', raw.as_bytes()).count();
        if raw.starts_with('/') {
            open.close(&name);
        } else {
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(ParseError::Limit(format!(
                    "line {line}: the file holds more than {MAX_NODES} elements; split it into smaller statements"
                )));
            }
            if nodes.is_multiple_of(4096) && cancel.is_cancelled() {
                return Err(ParseError::Cancelled);
            }
            // A leaf (text, no children) ends at the next tag.
            if open.stack.last().is_some_and(|t| t.text.is_some() && t.children.is_empty()) {
                open.pop();
            }
            // An element never contains itself: a second <STMTTRN> while one is open closes the first.
            open.close(&name);
            let node = Node { name, attrs, text: None, children: Vec::new(), line };
            if raw.trim_end().ends_with('/') {
                open.attach(node);
            } else {
                if open.stack.len() >= MAX_DEPTH {
                    return Err(ParseError::Limit(format!(
                        "line {line}: elements are nested more than {MAX_DEPTH} levels deep"
                    )));
                }
                open.push(node);
            }
        }
        line += tag_lines;
        i = close_at + 1;
    }
    flush(&mut pending, &mut open.stack);
    while open.pop() {}
    Ok((std::mem::take(&mut open.root), open.compared))
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
            &Cancel::default(),
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
        let t = build("<OFX><A>1<B>two<C><D>3</C></OFX>", 1, true, &Cancel::default()).unwrap();
        let ofx = t.child("OFX").unwrap();
        assert_eq!(ofx.child_text("A"), Some("1"));
        assert_eq!(ofx.child_text("B"), Some("two"));
        assert_eq!(ofx.path_text(&["C", "D"]), Some("3"));
    }

    fn nested(depth: usize) -> String {
        let mut s = String::from("<Document>");
        for i in 0..depth {
            s.push_str(&format!("<e{i}>"));
        }
        s
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_recursion() {
        // 60,000 levels overflowed the stack of the thread that built (or dropped) the tree.
        let err = build(&nested(60_000), 1, false, &Cancel::default()).unwrap_err();
        assert!(matches!(err, ParseError::Limit(ref m) if m.contains("nested more than 256")), "{err:?}");
        let text = nested(MAX_DEPTH - 1);
        let ok = build(&text, 1, false, &Cancel::default()).unwrap();
        assert!(ok.find(&format!("e{}", MAX_DEPTH - 2)).is_some());
        // The same inside an OFX file, closing tags included.
        let opening: String = (0..1000).map(|i| format!("<A{i}>")).collect();
        let closing: String = (0..1000).rev().map(|i| format!("</A{i}>")).collect();
        let ofx = format!("<OFX>{opening}{closing}</OFX>");
        assert!(matches!(build(&ofx, 1, true, &Cancel::default()), Err(ParseError::Limit(_))));
    }

    #[test]
    fn a_tree_at_the_depth_limit_is_walked_and_dropped_on_a_small_stack() {
        // A 64 KiB stack: recursion over 255 levels of `find` or `drop` frames would not fit in debug builds.
        let handle = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| {
                let text = nested(MAX_DEPTH - 1);
                let tree = build(&text, 1, false, &Cancel::default()).unwrap();
                let mut all = Vec::new();
                tree.find_all("nothing", &mut all);
                (tree.find("nothing").is_none(), tree.first_text("nothing").is_none(), all.is_empty())
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), (true, true, true));
    }

    #[test]
    fn closing_tags_cost_no_scan_of_the_open_elements() {
        // 250 open levels, then 20,000 stray closing tags and 20,000 leaves: each used to scan the whole
        // open stack (5 million comparisons; 20,000 levels took 340 ms).
        let mut s = nested(250);
        for i in 0..20_000 {
            s.push_str(&format!("</zz><x{i}>1"));
        }
        let (_, compared) = build_counting(&s, 1, false, &Cancel::default()).unwrap();
        assert!(compared <= 20_250 + 250, "compared {compared} open elements");
    }

    #[test]
    fn too_many_elements_are_refused() {
        let s = format!("<Document>{}</Document>", "<a/>".repeat(MAX_NODES + 1));
        let err = build(&s, 1, false, &Cancel::default()).unwrap_err();
        assert!(matches!(err, ParseError::Limit(ref m) if m.contains("more than 1000000 elements")), "{err:?}");
    }

    #[test]
    fn a_cancelled_build_stops() {
        let cancel = Cancel::default();
        cancel.cancel();
        let s = format!("<Document>{}</Document>", "<a/>".repeat(10_000));
        assert_eq!(build(&s, 1, false, &cancel).unwrap_err(), ParseError::Cancelled);
    }
}
