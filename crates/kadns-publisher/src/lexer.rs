//! Splits a zone file into entries (RFC 1035 §5.1), keeping line numbers.
//!
//! An entry is one directive or one resource record: a line, extended over
//! following lines while a `(` is open or a quoted string continues. Comments
//! (`;` to the end of the line, outside quotes) are dropped. Each token keeps
//! its line, its byte span in the text and whether it was quoted, so that the
//! zone-file parser can report the line of every problem and hand the original
//! text of an entry's RDATA to hickory-proto's parser.
//!
//! Tokenising follows hickory-proto's zone lexer where the two meet (a `"`
//! inside a bare word is part of the word; parentheses do not nest), and RFC
//! 1035 where hickory's lexer is wrong: a backslash escapes the next character
//! in a bare word too, so `a\;b` is one word.
//!
//! Scanning is by byte: every delimiter is ASCII, and UTF-8 never uses ASCII
//! byte values inside a multi-byte character, so every slice taken is on a
//! character boundary.

use crate::zonefile::ProblemKind;

/// One token of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The source text, quotes included for a quoted string.
    pub(crate) text: &'a str,
    /// Byte offset just after the token.
    pub(crate) end: usize,
    /// 1-based line the token starts on.
    pub(crate) line: usize,
    /// A `"quoted string"`.
    pub(crate) quoted: bool,
    /// The token lies inside `( … )`.
    pub(crate) in_parens: bool,
}

impl<'a> Token<'a> {
    /// The text without the surrounding quotes, escapes still in place.
    pub(crate) fn content(&self) -> &'a str {
        if self.quoted {
            self.text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(self.text)
        } else {
            self.text
        }
    }
}

/// One directive or resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// 1-based line the entry starts on.
    pub(crate) line: usize,
    /// The first line starts with a blank: the owner is the previous one.
    pub(crate) leading_blank: bool,
    /// At least one token.
    pub(crate) tokens: Vec<Token<'a>>,
    /// Byte offset of the end of the entry (its last line, without the newline).
    pub(crate) end: usize,
    /// A structural problem was reported inside the entry: it is dropped, so
    /// that one mistake gives one message.
    broken: bool,
}

/// The entries of a zone file, and the problems found while splitting it.
#[derive(Debug, Default)]
pub(crate) struct Lexed<'a> {
    pub(crate) entries: Vec<Entry<'a>>,
    pub(crate) problems: Vec<(usize, ProblemKind)>,
}

/// Splits `text` into entries.
pub(crate) fn lex(text: &str) -> Lexed<'_> {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut out = Lexed::default();
    let mut line = 1;
    let mut paren_line = None;
    let mut line_start = true;
    let mut blank_start = false;
    let mut entry: Option<Entry<'_>> = None;
    let mut i = 0;

    while let Some(b) = at(i) {
        if line_start {
            line_start = false;
            blank_start = b == b' ' || b == b'\t';
        }
        let in_parens = paren_line.is_some();
        match b {
            b'\n' => {
                if !in_parens {
                    finish(&mut out, entry.take(), text, i);
                }
                line += 1;
                line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while at(i).is_some_and(|c| c != b'\n') {
                    i += 1;
                }
            }
            b'(' => {
                if in_parens {
                    out.problems.push((line, ProblemKind::NestedParenthesis));
                    start(&mut entry, line, blank_start).broken = true;
                } else {
                    paren_line = Some(line);
                }
                start(&mut entry, line, blank_start);
                i += 1;
            }
            b')' => {
                if in_parens {
                    paren_line = None;
                } else {
                    out.problems
                        .push((line, ProblemKind::UnbalancedParenthesis));
                    start(&mut entry, line, blank_start).broken = true;
                }
                i += 1;
            }
            b'"' => {
                let start_line = line;
                let mut j = i + 1;
                loop {
                    match at(j) {
                        None => {
                            out.problems.push((start_line, ProblemKind::UnclosedQuote));
                            return out;
                        }
                        Some(b'"') => break,
                        Some(b'\\') => {
                            if at(j + 1) == Some(b'\n') {
                                line += 1;
                            }
                            j += 2;
                        }
                        Some(b'\n') => {
                            line += 1;
                            j += 1;
                        }
                        Some(_) => j += 1,
                    }
                }
                let end = j + 1;
                push(
                    &mut entry,
                    start_line,
                    blank_start,
                    text,
                    i,
                    end,
                    true,
                    in_parens,
                );
                i = end;
            }
            c if c < 0x20 || c == 0x7f => {
                out.problems
                    .push((line, ProblemKind::ControlCharacter { code: u32::from(c) }));
                start(&mut entry, line, blank_start).broken = true;
                i += 1;
            }
            _ => {
                let mut j = i;
                while let Some(c) = at(j) {
                    match c {
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                        b'\\' if at(j + 1).is_some_and(|n| n >= 0x20 && n != 0x7f) => j += 2,
                        c if c < 0x20 || c == 0x7f => break,
                        _ => j += 1,
                    }
                }
                push(&mut entry, line, blank_start, text, i, j, false, in_parens);
                i = j;
            }
        }
    }
    if let Some(open) = paren_line {
        out.problems.push((open, ProblemKind::UnclosedParenthesis));
    } else {
        finish(&mut out, entry, text, text.len());
    }
    out
}

fn start<'e, 'a>(
    entry: &'e mut Option<Entry<'a>>,
    line: usize,
    leading_blank: bool,
) -> &'e mut Entry<'a> {
    entry.get_or_insert_with(|| Entry {
        line,
        leading_blank,
        tokens: Vec::new(),
        end: 0,
        broken: false,
    })
}

#[allow(clippy::too_many_arguments)]
fn push<'a>(
    entry: &mut Option<Entry<'a>>,
    line: usize,
    leading_blank: bool,
    text: &'a str,
    start_byte: usize,
    end: usize,
    quoted: bool,
    in_parens: bool,
) {
    let token_text = text.get(start_byte..end).unwrap_or_default();
    start(entry, line, leading_blank).tokens.push(Token {
        text: token_text,
        end,
        line,
        quoted,
        in_parens,
    });
}

fn finish<'a>(out: &mut Lexed<'a>, entry: Option<Entry<'a>>, text: &str, mut end: usize) {
    let Some(mut entry) = entry else { return };
    if entry.tokens.is_empty() || entry.broken {
        return;
    }
    if text.as_bytes().get(end.wrapping_sub(1)) == Some(&b'\r') {
        end -= 1;
    }
    entry.end = end;
    out.entries.push(entry);
}

/// Decodes the escapes of a character-string (RFC 1035 §5.1): `\DDD` is the
/// byte with decimal value DDD, `\X` is X.
pub(crate) fn unescape(content: &str) -> Result<Vec<u8>, ProblemKind> {
    let bytes = content.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(d) if d.is_ascii_digit() => {
                let digits = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                let escape = || ProblemKind::BadEscape {
                    escape: content
                        .get(i..(i + 4).min(content.len()))
                        .unwrap_or("\\")
                        .to_owned(),
                };
                let digits = digits.ok_or_else(escape)?;
                let value = digits
                    .iter()
                    .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                out.push(u8::try_from(value).map_err(|_| escape())?);
                i += 4;
            }
            Some(&c) => {
                out.push(c);
                i += 2;
            }
            None => {
                return Err(ProblemKind::BadEscape {
                    escape: "\\".to_owned(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn texts<'a>(e: &Entry<'a>) -> Vec<&'a str> {
        e.tokens.iter().map(|t| t.text).collect()
    }

    #[test]
    fn entries_lines_comments_and_blanks() {
        let text = "; header\n$ORIGIN example.org.\nwww 300 IN A 192.0.2.1 ; web\n  IN AAAA ::1\n\n   ; only a comment\n";
        let lexed = lex(text);
        assert!(lexed.problems.is_empty());
        let e = &lexed.entries;
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].line, e[0].leading_blank), (2, false));
        assert_eq!(texts(&e[1]), ["www", "300", "IN", "A", "192.0.2.1"]);
        assert_eq!((e[1].line, e[1].leading_blank), (3, false));
        assert_eq!(texts(&e[2]), ["IN", "AAAA", "::1"]);
        assert_eq!((e[2].line, e[2].leading_blank), (4, true));
        // The entry's end is its last line, comment included, newline excluded.
        assert_eq!(&text[e[1].tokens[3].end..e[1].end], " 192.0.2.1 ; web");
    }

    #[test]
    fn parentheses_and_quotes_span_lines() {
        let text =
            "@ SOA ns host ( 1 ; serial\n 2 3\n 4 5 )\nt TXT \"a;b\nc\" x\\;y\nnext A 1.2.3.4\r\n";
        let lexed = lex(text);
        assert!(lexed.problems.is_empty(), "{:?}", lexed.problems);
        let e = &lexed.entries;
        assert_eq!(e.len(), 3);
        assert_eq!(
            texts(&e[0]),
            ["@", "SOA", "ns", "host", "1", "2", "3", "4", "5"]
        );
        assert_eq!(e[0].tokens[8].line, 3);
        assert!(e[0].tokens[4].in_parens && !e[0].tokens[3].in_parens);
        assert_eq!(texts(&e[1]), ["t", "TXT", "\"a;b\nc\"", "x\\;y"]);
        assert_eq!(e[1].tokens[2].content(), "a;b\nc");
        assert_eq!((e[1].line, e[1].tokens[3].line), (4, 5));
        assert_eq!(e[2].line, 6);
        assert_eq!(&text[e[2].tokens[1].end..e[2].end], " 1.2.3.4");
    }

    #[test]
    fn structural_problems_have_lines() {
        let lexed = lex("a A 1.2.3.4 )\nb TXT ( (\n x )\nc TXT \"open\n");
        assert_eq!(
            lexed.problems,
            [
                (1, ProblemKind::UnbalancedParenthesis),
                (2, ProblemKind::NestedParenthesis),
                (4, ProblemKind::UnclosedQuote),
            ]
        );
        let lexed = lex("a A 1.2.3.4\nb TXT ( x\n\n");
        assert_eq!(lexed.problems, [(2, ProblemKind::UnclosedParenthesis)]);
        assert_eq!(lexed.entries.len(), 1);
        let lexed = lex("a A \x01 1.2.3.4\n");
        assert_eq!(
            lexed.problems,
            [(1, ProblemKind::ControlCharacter { code: 1 })]
        );
    }

    #[test]
    fn unescape_follows_rfc_1035() {
        assert_eq!(unescape(r#"a\065b\"c\\d\;"#).unwrap(), b"aAb\"c\\d;");
        assert_eq!(unescape(r"\000\255").unwrap(), [0, 255]);
        assert_eq!(unescape("caf\u{e9}").unwrap(), "caf\u{e9}".as_bytes());
        assert!(matches!(
            unescape(r"\256"),
            Err(ProblemKind::BadEscape { .. })
        ));
        assert!(matches!(
            unescape(r"\12"),
            Err(ProblemKind::BadEscape { .. })
        ));
        assert!(matches!(
            unescape(r"\1a3"),
            Err(ProblemKind::BadEscape { .. })
        ));
        assert!(matches!(
            unescape("x\\"),
            Err(ProblemKind::BadEscape { .. })
        ));
    }

    proptest! {
        /// Any text lexes without panicking, and tokens and entries are in order.
        #[test]
        fn any_text_lexes(text in "[ -~\t\n\"();\\\\\u{e9}]{0,200}") {
            let lexed = lex(&text);
            let mut last = 0;
            for entry in &lexed.entries {
                prop_assert!(entry.line > last);
                last = entry.line;
                for token in &entry.tokens {
                    prop_assert!(token.end <= entry.end);
                    prop_assert!(!token.text.is_empty());
                }
            }
        }
    }
}
