//! Small, panic-free helpers shared by the line parsers: numbers, `key:value`
//! fields and the end of a comm that may itself contain spaces and parentheses.

/// Parses a decimal unsigned number, the whole of `text`.
pub(crate) fn unsigned(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a decimal signed number, the whole of `text` (`-1000`, `998`).
pub(crate) fn signed(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `u32` from a decimal number (pids, uids, CPUs).
pub(crate) fn unsigned_u32(text: &str) -> Option<u32> {
    unsigned(text).and_then(|n| u32::try_from(n).ok())
}

/// `i32` from a decimal number (oom_score_adj, order).
pub(crate) fn signed_i32(text: &str) -> Option<i32> {
    signed(text).and_then(|n| i32::try_from(n).ok())
}

/// Parses a hexadecimal number with or without `0x` (`0xcc0`, `201da`).
pub(crate) fn hex(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A size the kernel prints in kB (`265120kB`, `1024KB`, or a bare number): the number of kB.
pub(crate) fn kilobytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let number = text.strip_suffix("kB").or_else(|| text.strip_suffix("KB")).unwrap_or(text);
    unsigned(number)
}

/// The leading decimal digits of `text` and what follows them (`"123 (x)"` -> `(123, " (x)")`).
pub(crate) fn leading_u32(text: &str) -> Option<(u32, &str)> {
    let end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (digits, rest) = text.split_at_checked(end)?;
    Some((unsigned_u32(digits)?, rest))
}

/// Splits `"(comm) rest"` at the *last* `)` followed by one of `boundaries`: a comm may contain
/// spaces and parentheses (`(a (b) c) total-vm:…`, `((resolved)), now …`), never the whole
/// boundary text after a `)` in practice (comm is at most 15 bytes). Returns the comm and the text
/// after the boundary's `)`.
pub(crate) fn parenthesized_comm<'a>(text: &'a str, boundaries: &[&str]) -> Option<(&'a str, &'a str)> {
    let inner = text.strip_prefix('(')?;
    let close = boundaries.iter().filter_map(|boundary| inner.rfind(boundary)).max()?;
    let comm = inner.get(..close)?;
    let rest = inner.get(close + 1..)?;
    Some((comm, rest))
}

/// Iterates the `key:value` and `key value` fields of the tail of a kill line
/// (`total-vm:265120kB, anon-rss:81664kB, …, UID:0 pgtables:208kB oom_score_adj:0`, RHEL's
/// `UID 0,`): yields `(key, value)` pairs; a bare word followed by a number is a pair too.
pub(crate) fn fields(text: &str) -> Vec<(&str, &str)> {
    let tokens: Vec<&str> = text.split([',', ' ']).filter(|token| !token.is_empty()).collect();
    let mut pairs = Vec::new();
    let mut index = 0;
    while let Some(token) = tokens.get(index) {
        if let Some((key, value)) = token.split_once(':') {
            pairs.push((key, value));
        } else if let Some(next) = tokens.get(index + 1).filter(|next| signed(next).is_some()) {
            pairs.push((token, next));
            index += 1;
        }
        index += 1;
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(unsigned("42"), Some(42));
        assert_eq!(unsigned("-1"), None);
        assert_eq!(unsigned("+1"), None);
        assert_eq!(unsigned(""), None);
        assert_eq!(unsigned("99999999999999999999999"), None);
        assert_eq!(signed("-1000"), Some(-1000));
        assert_eq!(signed("-"), None);
        assert_eq!(signed_i32("4294967296"), None);
        assert_eq!(hex("0xcc0"), Some(0xcc0));
        assert_eq!(hex("201da"), Some(0x201da));
        assert_eq!(hex("0x"), None);
        assert_eq!(kilobytes("265120kB"), Some(265120));
        assert_eq!(kilobytes("12KB"), Some(12));
        assert_eq!(kilobytes("kB"), None);
    }

    #[test]
    fn leading_digits() {
        assert_eq!(leading_u32("123 (x)"), Some((123, " (x)")));
        assert_eq!(leading_u32("123"), Some((123, "")));
        assert_eq!(leading_u32("x"), None);
    }

    #[test]
    fn comm_takes_the_last_boundary() {
        assert_eq!(parenthesized_comm("(a (b) c) total-vm:1kB", &[") total-vm:"]), Some(("a (b) c", " total-vm:1kB")));
        assert_eq!(parenthesized_comm("((resolved)), now x", &["), now "]), Some(("(resolved)", ", now x")));
        assert_eq!(parenthesized_comm("(x) total-vm:", &[") score ", ") total-vm:"]), Some(("x", " total-vm:")));
        assert_eq!(parenthesized_comm("x) total-vm:", &[") total-vm:"]), None);
        assert_eq!(parenthesized_comm("(x total-vm:", &[") total-vm:"]), None);
    }

    #[test]
    fn key_value_fields() {
        assert_eq!(
            fields("total-vm:1kB, anon-rss:2kB, UID:0 pgtables:3kB oom_score_adj:-5"),
            vec![("total-vm", "1kB"), ("anon-rss", "2kB"), ("UID", "0"), ("pgtables", "3kB"), ("oom_score_adj", "-5")]
        );
        assert_eq!(fields(", UID 498, total-vm:7kB"), vec![("UID", "498"), ("total-vm", "7kB")]);
    }
}
