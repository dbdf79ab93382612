//! Text from outside oomtrace as a terminal or a document may show it.
//!
//! A process names itself (`prctl(PR_SET_NAME)`, or the name of the file it
//! runs), and cgroup paths, unit, container, pod and image names and kernel
//! log lines are written by whoever runs workloads on the node. Printed raw,
//! a victim named `\x1b[2J\x1b]0;pwn\x07` clears the screen and retitles the
//! terminal of whoever runs `oomtrace live`. Every table, report, markdown
//! document and log line therefore shows such text through [`escape`] (a
//! name) or [`escape_controls`] (oomtrace's own sentence that holds names);
//! JSON keeps serde_json's escaping, and the raw text.
//!
//! What is escaped, and how:
//! - `\` as `\\`, so that an escape below cannot be mistaken for a name's own
//!   characters (systemd's `\x2d` in a unit name shows as `\\x2d`);
//! - C0 controls (U+0000–U+001F, also tab and newline: a name is one line)
//!   and DEL as `\xNN`, the way the kernel itself writes them in /dev/kmsg;
//! - C1 controls (U+0080–U+009F: U+009B is a one-character CSI to some
//!   terminals) as `\u{9b}`;
//! - the bidirectional formatting characters (U+061C, U+200E, U+200F,
//!   U+202A–U+202E, U+2066–U+2069), which reorder what follows them on the
//!   line, and the line and paragraph separators (U+2028, U+2029), as
//!   `\u{202e}`.
//!
//! Everything else is kept: `ü`, CJK, emoji (with their zero-width joiners)
//! and U+FFFD, which is what a byte that is not UTF-8 already became when the
//! name was decoded.

use std::{borrow::Cow, fmt};

/// A name from outside (comm, cgroup path, unit, pod, image, a kernel log
/// line) as it may be printed: controls, bidi overrides and `\` escaped.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

/// oomtrace's own text that holds names (advice, a command to copy, an error
/// message): controls and bidi overrides escaped, backslashes kept, because
/// they are oomtrace's own shell quoting (`'\''`) or a unit's systemd escaping
/// that a pasted command needs as it is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// [`escape`] as a `Display`, for a `tracing` field (`comm = %Escaped(comm)`)
/// or a `format!` argument, without an allocation.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

fn escape_with(text: &str, backslash: bool) -> Cow<'_, str> {
    let needs = |c: char| (backslash && c == '\\') || shown_escaped(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' if backslash => out.push_str("\\\\"),
            c if shown_escaped(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if shown_escaped(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Controls (C0, DEL, C1) and the characters that move or reorder text.
fn shown_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_attack_is_shown_not_run() {
        assert_eq!(escape("\x1b[2J\x1b]0;pwn\x07"), r"\x1b[2J\x1b]0;pwn\x07");
        assert_eq!(escape("a\tb\nc\rd\0e\x7f"), r"a\x09b\x0ac\x0dd\x00e\x7f");
    }

    #[test]
    fn a_backslash_is_escaped_so_that_escapes_are_unambiguous() {
        // The 4 characters `\x1b` and the one character ESC must not look alike.
        assert_eq!(escape(r"\x1b"), r"\\x1b");
        assert_ne!(escape(r"\x1b"), escape("\x1b"));
        assert_eq!(
            escape(r"/system.slice/system-systemd\x2dfsck.slice"),
            r"/system.slice/system-systemd\\x2dfsck.slice"
        );
        // In oomtrace's own text (a shell quote, a systemd name), a backslash stays.
        assert_eq!(escape_controls(r"'it'\''s' x\x2dy"), r"'it'\''s' x\x2dy");
        assert_eq!(escape_controls("`a\x1bb` was killed"), r"`a\x1bb` was killed");
    }

    #[test]
    fn c1_controls_and_bidi_overrides() {
        // U+009B is CSI in 8-bit terminals; U+0085 is NEL (a line break).
        assert_eq!(escape("a\u{9b}2Jb\u{85}"), r"a\u{9b}2Jb\u{85}");
        assert_eq!(escape("\u{80}\u{9f}"), r"\u{80}\u{9f}");
        // "evil\u{202e}gpj.exe" would read as "evilexe.jpg".
        assert_eq!(escape("evil\u{202e}gpj.exe"), r"evil\u{202e}gpj.exe");
        assert_eq!(escape("\u{2066}x\u{2069}\u{200f}\u{61c}\u{2028}"), r"\u{2066}x\u{2069}\u{200f}\u{61c}\u{2028}");
    }

    #[test]
    fn printable_unicode_is_kept() {
        for text in
            ["münchen", "日本語のプロセス", "nginx: worker", "a\u{fffd}b", "👩\u{200d}💻", "/kubepods.slice/a b"]
        {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn escaped_displays_the_same() {
        assert_eq!(Escaped("a\x07\\").to_string(), r"a\x07\\");
    }
}
